// A dashboard page's charts, drawn from its JSON blob (json_script) and never from inline
// template values, so no customer text can run as script. Drawn once per blob: again when an
// htmx swap brings a new blob, not on an unrelated swap (e.g. the footer's status poll).
//   askhandleCharts("insights-data", function (data, charts) { charts.push(new Chart(...)); });
(function () {
  "use strict";
  window.askhandleCharts = function (blobId, draw) {
    const charts = [];
    let shown = null; // the JSON blob element the charts were drawn from

    function render() {
      const blob = document.getElementById(blobId);
      if (blob === shown) return;
      while (charts.length) charts.pop().destroy();
      shown = blob;
      if (!blob || typeof Chart === "undefined") return;
      Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
      Chart.defaults.color = "#6b7280";
      draw(JSON.parse(blob.textContent), charts);
    }

    document.addEventListener("DOMContentLoaded", render);
    document.addEventListener("htmx:afterSettle", render);
  };
})();
