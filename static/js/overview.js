// The Overview's chart: conversations per day, from the #overview-data JSON blob (json_script).
(function () {
  "use strict";
  function draw() {
    var blob = document.getElementById("overview-data");
    var canvas = document.getElementById("chart-overview");
    if (!blob || !canvas || typeof Chart === "undefined" || Chart.getChart(canvas)) return;
    var data = JSON.parse(blob.textContent);
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = "#4b5563";
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels.map(function (d) { return new Date(d + "T00:00:00").toLocaleDateString(document.documentElement.lang || undefined, { month: "short", day: "numeric" }); }),
        datasets: [
          { label: canvas.dataset.conversations || "Conversations", data: data.conversations, backgroundColor: "#6366f1", borderRadius: 3, stack: "a" },
        ],
      },
      options: {
        maintainAspectRatio: false, animation: false,
        plugins: { legend: { display: false } },
        scales: { x: { grid: { display: false }, ticks: { maxTicksLimit: 6 } }, y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
})();
