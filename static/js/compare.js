// Compare-modes charts. Data comes only from the #compare-data JSON blob (json_script), the
// words from the canvases' data-* attributes (in the dashboard's language).
(function () {
  "use strict";
  const charts = [];
  let shown = null;

  function render() {
    const blob = document.getElementById("compare-data");
    if (blob === shown) return;
    while (charts.length) charts.pop().destroy();
    shown = blob;
    if (!blob || typeof Chart === "undefined") return;
    const data = JSON.parse(blob.textContent);
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = "#6b7280";
    const outcomes = document.getElementById("chart-outcomes");
    if (outcomes) {
      charts.push(new Chart(outcomes, {
        type: "bar",
        data: {
          labels: data.modes,
          datasets: [
            { label: outcomes.dataset.right || "Right", data: data.right, backgroundColor: "#059669" },
            { label: outcomes.dataset.wrong || "Wrong", data: data.wrong, backgroundColor: "#dc2626" },
            { label: outcomes.dataset.declined || "Wrongly declined", data: data.declined, backgroundColor: "#d97706" },
          ],
        },
        options: {
          maintainAspectRatio: false, animation: false,
          plugins: { title: { display: true, text: outcomes.dataset.title || "Your questions, by what customers read" } },
          scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } },
        },
      }));
    }
    const latency = document.getElementById("chart-latency");
    if (latency) {
      charts.push(new Chart(latency, {
        type: "bar",
        data: { labels: data.modes, datasets: [{ label: latency.dataset.label || "95th percentile, ms", data: data.p95, backgroundColor: "#4f46e5" }] },
        options: {
          maintainAspectRatio: false, animation: false, indexAxis: "y",
          plugins: { title: { display: true, text: latency.dataset.title || "Time to the whole answer (p95)" }, legend: { display: false } },
          scales: { x: { beginAtZero: true } },
        },
      }));
    }
  }
  document.addEventListener("DOMContentLoaded", render);
  document.addEventListener("htmx:afterSettle", render);
})();
