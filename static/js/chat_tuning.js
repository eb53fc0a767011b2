// Fine-tuning page: the loss chart of the shown run, redrawn after each htmx poll. Data comes
// only from the #ct-loss-data JSON blob (json_script), its words from the canvas's data-*
// attributes (in the dashboard's language).
(function () {
  "use strict";
  let chart = null;

  function render() {
    const blob = document.getElementById("ct-loss-data");
    const canvas = document.getElementById("ct-loss-chart");
    if (!blob || !canvas || typeof Chart === "undefined") return;
    const data = JSON.parse(blob.textContent);
    if (chart && chart.canvas === canvas) {
      chart.data.labels = data.steps;
      chart.data.datasets[0].data = data.losses;
      chart.update("none");
      return;
    }
    if (chart) chart.destroy();
    chart = new Chart(canvas, {
      type: "line",
      data: {
        labels: data.steps,
        datasets: [{ label: canvas.dataset.loss || "Training loss", data: data.losses, borderColor: "#4f46e5", backgroundColor: "#4f46e5", pointRadius: 1, tension: 0.2 }],
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        scales: { x: { title: { display: true, text: canvas.dataset.step || "step" } }, y: { beginAtZero: true } },
        plugins: { legend: { display: false } },
      },
    });
  }

  document.addEventListener("DOMContentLoaded", render);
  document.addEventListener("htmx:afterSettle", render);
})();
