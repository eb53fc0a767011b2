// Insights charts (static/js/charts.js draws them from the #insights-data blob).
askhandleCharts("insights-data", function (data, charts) {
  "use strict";

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
});
