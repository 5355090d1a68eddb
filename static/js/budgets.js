// The budget pages: the spending-trend chart (Chart.js, served from static/vendor), category colour
// swatches, the report page's print button and the confirmation before a budget is closed. No inline
// script or style: the CSP is default-src 'self', so data comes from a json_script element, colours
// are set through the DOM and handlers are attached here.
(function () {
  "use strict";

  document.querySelectorAll(".swatch[data-color]").forEach(function (swatch) {
    if (/^#[0-9A-Fa-f]{6}$/.test(swatch.dataset.color)) { swatch.style.backgroundColor = swatch.dataset.color; }
  });

  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });

  // A move that cannot be undone (closing a budget) asks first.
  document.querySelectorAll("button[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.dataset.confirm)) { event.preventDefault(); }
    });
  });

  var source = document.getElementById("budget-chart-data");
  var canvas = document.getElementById("spending-trend");
  if (!source || !canvas || !window.Chart) { return; }
  var data = JSON.parse(source.textContent);
  // Money arrives as decimal strings; the chart only draws it, so numbers are fine here.
  function numbers(values) { return values.map(function (v) { return Number(v); }); }

  var datasets = data.categories.map(function (category) {
    return {type: "bar", label: category.name, data: numbers(category.spent), backgroundColor: category.color,
            stack: "spent", yAxisID: "y"};
  });
  // The y axis stacks (the category bars of a month pile up to its spend); each line is its own
  // stack, so it is drawn at its own values rather than added to another.
  datasets.push({type: "line", label: "Cumulative spent", data: numbers(data.cumulative), borderColor: "#1f2430",
                 backgroundColor: "#1f2430", tension: 0.2, stack: "cumulative", yAxisID: "y"});
  datasets.push({type: "line", label: "Total budget", data: data.labels.map(function () { return Number(data.total); }),
                 borderColor: "#b42318", borderDash: [6, 4], pointRadius: 0, fill: false, stack: "total", yAxisID: "y"});

  new window.Chart(canvas, {
    data: {labels: data.labels, datasets: datasets},
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: {mode: "index", intersect: false},
      plugins: {legend: {position: "bottom"}, title: {display: true, text: "Spending per month"}},
      scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true, title: {display: true, text: "Amount"}}}
    }
  });
}());
