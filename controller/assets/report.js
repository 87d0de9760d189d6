// Quarry's report glue: draws every chart of the page with dygraphs from
// the JSON block beside it (<script type="application/json"
// class="quarry-chart">). No geometry here: options for dygraphs only.
(function () {
  "use strict";
  // Okabe & Ito's colour-blind-safe palette (black last: reference lines).
  var PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
    "#56B4E9", "#F0E442", "#000000"];
  var REFERENCE = "#000000";

  function percentileLabel(x) {
    // x = 1 / (1 - p): 2 -> 50%, 100 -> 99%.
    var p = 100 * (1 - 1 / x);
    var digits = p >= 99.99 ? 3 : p >= 99.9 ? 2 : p >= 99 ? 1 : 0;
    return String(parseFloat(p.toFixed(digits))) + "%";
  }

  function formatter(axis) {
    if (axis.format === "percentile") {
      return percentileLabel;
    }
    if (axis.format === "category") {
      return function (x) {
        var i = Math.round(x);
        return Math.abs(x - i) < 1e-9 && axis.categories[i] !== undefined ?
          axis.categories[i] : "";
      };
    }
    if (axis.format === "hours") {
      return function (x) { return (x / 3600).toFixed(x % 3600 === 0 ? 0 : 2) + " h"; };
    }
    return undefined;
  }

  function axisOptions(axis) {
    var o = { logscale: !!axis.log };
    var f = formatter(axis);
    if (f) {
      o.axisLabelFormatter = f;
      o.valueFormatter = f;
    }
    if (axis.format === "category") {
      o.ticker = function () {
        return axis.categories.map(function (c, i) { return { v: i, label: c }; });
      };
    }
    if (axis.format === "percentile") {
      o.ticker = function (min, max) {
        var ticks = [];
        for (var v = 1; v <= max * 1.0001; v *= 10) {
          if (v >= min) { ticks.push({ v: v, label: percentileLabel(v) }); }
        }
        return ticks;
      };
    }
    return o;
  }

  function draw(spec) {
    var div = document.getElementById("plot-" + spec.id);
    var colors = [];
    var series = {};
    var palette = 0;
    spec.series.forEach(function (s) {
      if (s.reference) {
        colors.push(REFERENCE);
        series[s.label] = { strokePattern: Dygraph.DASHED_LINE, strokeWidth: 1.5 };
      } else {
        colors.push(PALETTE[palette++ % (PALETTE.length - 1)]);
        series[s.label] = { drawPoints: spec.points };
        if (s.dashed) { series[s.label].strokePattern = Dygraph.DASHED_LINE; }
      }
      if (s.y2) { series[s.label].axis = "y2"; }
    });
    var options = {
      labels: [spec.x.label].concat(spec.series.map(function (s) { return s.label; })),
      colors: colors,
      series: series,
      xlabel: spec.x.label,
      ylabel: spec.y.label,
      connectSeparatedPoints: true,
      legend: "always",
      labelsSeparateLines: true,
      labelsDiv: document.getElementById("legend-" + spec.id),
      customBars: spec.bands,
      stepPlot: spec.kind === "bars",
      fillGraph: spec.kind === "bars",
      fillAlpha: 0.6,
      includeZero: spec.kind === "bars" || !!spec.y.zero,
      xRangePad: spec.kind === "bars" ? 24 : 0,
      axes: { x: axisOptions(spec.x), y: axisOptions(spec.y) }
    };
    if (spec.y2) {
      options.y2label = spec.y2.label;
      options.axes.y2 = axisOptions(spec.y2);
      options.axes.y2.independentTicks = true;
    }
    var g = new Dygraph(div, spec.rows, options);
    if (spec.annotations.length > 0) {
      g.ready(function () {
        g.setAnnotations(spec.annotations.map(function (a) {
          return { series: a.series, x: a.x, shortText: a.short, text: a.text, width: 40 };
        }));
      });
    }
    return g;
  }

  function drawAll() {
    var charts = {};
    var blocks = document.querySelectorAll("script.quarry-chart");
    for (var i = 0; i < blocks.length; i++) {
      var spec = JSON.parse(blocks[i].textContent);
      charts[spec.id] = { spec: spec, graph: draw(spec) };
    }
    window.quarryCharts = charts;
    window.quarryDrawnMs = performance.now();
    document.body.setAttribute("data-charts-drawn", String(blocks.length));
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
