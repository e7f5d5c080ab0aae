// Draws every <figure data-chart> of a page with uPlot. The figure holds its data as JSON
// ({title, x: [unix seconds], series: [{label, values}], y_label}); the same figures are in the
// page's tables, so with JavaScript off nothing is lost but the drawing.
(function () {
  "use strict";
  if (typeof uPlot === "undefined") { return; }
  var colours = ["#1f6feb", "#d1242f", "#1a7f37", "#8250df", "#bc4c00"];
  var figures = document.querySelectorAll("figure[data-chart]");
  for (var i = 0; i < figures.length; i++) {
    var fig = figures[i];
    var spec = JSON.parse(document.getElementById(fig.getAttribute("data-chart")).textContent);
    var data = [spec.x];
    var series = [{}];
    for (var j = 0; j < spec.series.length; j++) {
      data.push(spec.series[j].values);
      series.push({label: spec.series[j].label, stroke: colours[j % colours.length], width: 2,
                   spanGaps: true});
    }
    var width = Math.max(320, Math.min(fig.clientWidth || 900, 900));
    new uPlot({width: width, height: 260, series: series,
               axes: [{}, {label: spec.y_label}], scales: {x: {time: true}}}, data, fig);
    fig.setAttribute("data-drawn", "true");
  }
})();
