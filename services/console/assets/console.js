// The console's charts (uPlot) and sortable tables. Each chart reads the table the server
// rendered beside it (a <script type="application/json">): the same figures as the HTML
// table and the CSV, so what a chart shows can be checked against the numbers.
(function () {
  "use strict";

  function column(table, name) {
    var i = table.columns.indexOf(name);
    return table.rows.map(function (r) { return i < 0 ? 0 : Number(r[i]) || 0; });
  }

  function labels(table, name) {
    var i = table.columns.indexOf(name);
    return table.rows.map(function (r) { return String(r[i]); });
  }

  var colours = ["#2b6cb0", "#c53030", "#2f855a", "#b7791f", "#6b46c1"];

  function bars(el, names, series, seriesLabels) {
    var xs = names.map(function (_, i) { return i; });
    var opts = {
      width: Math.min(el.clientWidth || 720, 960),
      height: 260,
      scales: { x: { time: false, range: [-0.5, Math.max(names.length - 0.5, 0.5)] } },
      axes: [
        { values: function (u, ticks) { return ticks.map(function (t) { return Number.isInteger(t) ? names[t] || "" : ""; }); } },
        {}
      ],
      series: [{}].concat(series.map(function (_, i) {
        return {
          label: seriesLabels[i],
          fill: colours[i % colours.length] + "cc",
          stroke: colours[i % colours.length],
          paths: uPlot.paths.bars({ size: [0.8 / series.length, 80], align: 0, gap: 2 })
        };
      }))
    };
    return new uPlot(opts, [xs].concat(series), el);
  }

  function draw(el) {
    var data = JSON.parse(document.getElementById(el.id + "-data").textContent);
    if (!data || !data.rows || data.rows.length === 0) {
      el.textContent = "No figures to chart in this range.";
      return;
    }
    var kind = el.getAttribute("data-kind");
    if (kind === "funnel") {
      var steps = ["views", "starts", "submits", "conversions"];
      var values = steps.map(function (s) { return column(data, s)[0]; });
      bars(el, steps, [values], ["sessions"]);
    } else if (kind === "fields") {
      bars(el, labels(data, "field"), [column(data, "interactions"), column(data, "abandons")], ["interactions", "abandons"]);
    } else if (kind === "lines") {
      var days = labels(data, "day").map(function (d) { return Date.parse(d + "T00:00:00Z") / 1000; });
      var names = data.columns.filter(function (c) { return c !== "day"; });
      new uPlot({
        width: Math.min(el.clientWidth || 720, 960),
        height: 280,
        series: [{}].concat(names.map(function (n, i) { return { label: n, stroke: colours[i % colours.length], width: 2 }; }))
      }, [days].concat(names.map(function (n) { return column(data, n); })), el);
    }
    el.setAttribute("data-drawn", "1");
  }

  function sortable(table) {
    var heads = table.querySelectorAll("thead th");
    heads.forEach(function (th, i) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows).filter(function (r) { return r.cells.length > i; });
        var down = th.getAttribute("data-order") !== "desc";
        heads.forEach(function (h) { h.removeAttribute("data-order"); });
        th.setAttribute("data-order", down ? "desc" : "asc");
        rows.sort(function (a, b) {
          var x = a.cells[i].getAttribute("data-sort") || a.cells[i].textContent;
          var y = b.cells[i].getAttribute("data-sort") || b.cells[i].textContent;
          var nx = Number(x), ny = Number(y);
          var c = (!isNaN(nx) && !isNaN(ny) && x !== "" && y !== "") ? nx - ny : x.localeCompare(y);
          return down ? -c : c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }

  document.querySelectorAll(".chart").forEach(function (el) {
    try { draw(el); } catch (e) { el.textContent = "The chart could not be drawn: " + e.message; }
  });
  document.querySelectorAll("table.sortable").forEach(sortable);
})();
