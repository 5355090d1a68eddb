// Small SVG line charts (rounds on x, a metric on y) for the execution page. No library and no
// inline styles: the page's CSP is default-src 'self', so the look comes from classes in pollen.css.
(function (global) {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var WIDTH = 480, HEIGHT = 240;
  var MARGIN = {top: 12, right: 16, bottom: 34, left: 52};

  function node(name, attrs, parent) {
    var element = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (key) { element.setAttribute(key, attrs[key]); });
    if (parent) { parent.appendChild(element); }
    return element;
  }

  function text(content, attrs, parent) {
    var element = node("text", attrs, parent);
    element.textContent = content;
    return element;
  }

  // About ``count`` round-numbered ticks covering [lo, hi].
  function ticks(lo, hi, count) {
    var span = hi - lo;
    var raw = span / Math.max(count, 1);
    var magnitude = Math.pow(10, Math.floor(Math.log(raw) / Math.LN10));
    var step = [1, 2, 2.5, 5, 10].map(function (m) { return m * magnitude; })
      .filter(function (s) { return s >= raw; })[0] || 10 * magnitude;
    var out = [];
    for (var value = Math.ceil(lo / step - 1e-9) * step; value <= hi + step * 1e-9; value += step) {
      out.push(Math.abs(value) < step * 1e-9 ? 0 : value);
    }
    return {values: out, step: step};
  }

  function label(value, step) {
    var decimals = Math.max(0, -Math.floor(Math.log(step) / Math.LN10 + 1e-9));
    // a step of 2.5, 0.25... needs one digit more than its magnitude
    if (Math.abs(step * Math.pow(10, decimals) - Math.round(step * Math.pow(10, decimals))) > 1e-6) { decimals += 1; }
    return value.toFixed(Math.min(decimals, 6));
  }

  function isNumber(value) { return typeof value === "number" && isFinite(value); }

  // options: series [{key, label}], xMax (the planned rounds), yMin / yMax (fixed bounds, optional),
  // title, empty (text, or a function giving it, while there is no point).
  function LineChart(container, options) {
    this.container = container;
    this.options = options;
    this.points = {};  // series key -> [[round, value], ...] sorted by round
    options.series.forEach(function (s) { this.points[s.key] = []; }, this);
  }

  // Set the values of one round (``values`` maps series keys to numbers; others are ignored).
  LineChart.prototype.set = function (round, values) {
    this.options.series.forEach(function (s) {
      if (!isNumber(values[s.key])) { return; }
      var list = this.points[s.key].filter(function (p) { return p[0] !== round; });
      list.push([round, values[s.key]]);
      list.sort(function (a, b) { return a[0] - b[0]; });
      this.points[s.key] = list;
    }, this);
    return this;
  };

  LineChart.prototype.render = function () {
    var options = this.options, points = this.points, container = this.container;
    var all = [];
    options.series.forEach(function (s) { all = all.concat(points[s.key]); });
    while (container.firstChild) { container.removeChild(container.firstChild); }
    if (!all.length) {
      var empty = document.createElement("p");
      empty.className = "muted";
      empty.textContent = (typeof options.empty === "function" ? options.empty() : options.empty) || "No data yet.";
      container.appendChild(empty);
      return this;
    }
    var xs = all.map(function (p) { return p[0]; }), ys = all.map(function (p) { return p[1]; });
    var xLo = 1, xHi = Math.max(options.xMax || 1, Math.max.apply(null, xs), 2);
    var yLo = isNumber(options.yMin) ? Math.min(options.yMin, Math.min.apply(null, ys)) : Math.min.apply(null, ys);
    var yHi = isNumber(options.yMax) ? Math.max(options.yMax, Math.max.apply(null, ys)) : Math.max.apply(null, ys);
    if (yHi - yLo < 1e-12) { yHi = yLo + (Math.abs(yLo) || 1) * 0.1; yLo -= (Math.abs(yLo) || 1) * 0.1; }
    var yTicks = ticks(yLo, yHi, 4);
    yLo = Math.min(yLo, yTicks.values[0]);
    yHi = Math.max(yHi, yTicks.values[yTicks.values.length - 1]);
    var xStep = Math.max(1, Math.ceil(ticks(xLo, xHi, Math.min(8, xHi - xLo)).step));  // rounds are whole

    var plotW = WIDTH - MARGIN.left - MARGIN.right, plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
    function sx(x) { return MARGIN.left + (x - xLo) / (xHi - xLo) * plotW; }
    function sy(y) { return MARGIN.top + (1 - (y - yLo) / (yHi - yLo)) * plotH; }

    var svg = node("svg", {viewBox: "0 0 " + WIDTH + " " + HEIGHT, class: "line-chart", role: "img",
                           "aria-label": (options.title || "chart") + " by round"});
    var grid = node("g", {class: "grid"}, svg);
    yTicks.values.forEach(function (value) {
      node("line", {x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: sy(value), y2: sy(value)}, grid);
      text(label(value, yTicks.step), {x: MARGIN.left - 6, y: sy(value) + 4, class: "tick y"}, svg);
    });
    for (var x = Math.ceil(xLo / xStep) * xStep; x <= xHi; x += xStep) {
      node("line", {x1: sx(x), x2: sx(x), y1: HEIGHT - MARGIN.bottom, y2: HEIGHT - MARGIN.bottom + 4, class: "axis"}, svg);
      text(String(x), {x: sx(x), y: HEIGHT - MARGIN.bottom + 16, class: "tick x"}, svg);
    }
    node("line", {x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: HEIGHT - MARGIN.bottom, y2: HEIGHT - MARGIN.bottom,
                  class: "axis"}, svg);
    text("round", {x: MARGIN.left + plotW / 2, y: HEIGHT - 4, class: "axis-label"}, svg);

    options.series.forEach(function (s, index) {
      var list = points[s.key];
      if (!list.length) { return; }
      var group = node("g", {class: "series series-" + index, "data-series": s.key}, svg);
      var d = list.map(function (p, i) { return (i ? "L" : "M") + sx(p[0]).toFixed(1) + " " + sy(p[1]).toFixed(1); });
      node("path", {d: d.join(" "), class: "line"}, group);
      list.forEach(function (p) {
        var dot = node("circle", {cx: sx(p[0]).toFixed(1), cy: sy(p[1]).toFixed(1), r: 3, class: "dot"}, group);
        node("title", {}, dot).textContent = s.label + ", round " + p[0] + ": " + p[1].toFixed(4);
      });
    });
    container.appendChild(svg);

    if (options.series.length > 1) {
      var legend = document.createElement("ul");
      legend.className = "legend";
      options.series.forEach(function (s, index) {
        var item = document.createElement("li");
        item.className = "series-" + index;
        item.textContent = s.label;
        legend.appendChild(item);
      });
      container.appendChild(legend);
    }
    return this;
  };

  global.PollenChart = {
    line: function (container, options) { return new LineChart(container, options); },
    ticks: ticks
  };
})(window);
