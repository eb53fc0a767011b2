// Compare-modes charts (static/js/charts.js draws them from the #compare-data blob); the words
// come from the canvases' data-* attributes (in the dashboard's language).
askhandleCharts("compare-data", function (data, charts) {
  "use strict";
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
});
