// Insights charts. Data comes only from the #insights-data JSON blob (json_script), never from
// inline template values, so customer text can never run as script.
(function () {
  "use strict";
  const charts = [];
  let shown = null; // the JSON blob element the charts were drawn from

  function render() {
    const blob = document.getElementById("insights-data");
    if (blob === shown) return; // an unrelated swap (e.g. the footer's status poll)
    while (charts.length) charts.pop().destroy();
    shown = blob;
    if (!blob || typeof Chart === "undefined") return;
    const data = JSON.parse(blob.textContent);
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = "#6b7280";

    const activity = document.getElementById("chart-activity");
    if (activity) {
      charts.push(new Chart(activity, {
        data: {
          labels: data.activity.labels.map((d) => new Date(d + "T00:00:00").toLocaleDateString(document.documentElement.lang || undefined, { month: "short", day: "numeric" })),
          datasets: [
            { type: "bar", label: activity.dataset.messages || "Messages", data: data.activity.messages, backgroundColor: "#c7d2fe", borderRadius: 4, yAxisID: "y" },
            { type: "line", label: activity.dataset.conversations || "Conversations", data: data.activity.conversations, borderColor: "#4f46e5", backgroundColor: "#4f46e5", cubicInterpolationMode: "monotone", pointRadius: 2, yAxisID: "y" },
          ],
        },
        options: {
          maintainAspectRatio: false,
          animation: false,
          interaction: { mode: "index", intersect: false },
          scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { grid: { display: false } } },
          plugins: { legend: { position: "bottom" } },
        },
      }));
    }

    const paths = document.getElementById("chart-paths");
    if (paths && data.paths.length) {
      charts.push(new Chart(paths, {
        type: "doughnut",
        data: {
          labels: data.paths.map((p) => p.label),
          datasets: [{ data: data.paths.map((p) => p.count), backgroundColor: data.paths.map((p) => p.colour), borderWidth: 1 }],
        },
        options: { maintainAspectRatio: false, animation: false, cutout: "62%", plugins: { legend: { display: false } } },
      }));
    }
  }

  document.addEventListener("DOMContentLoaded", render);
  document.addEventListener("htmx:afterSettle", render);
})();
