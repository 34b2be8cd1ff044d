// agentmesh trace report: sortable tables and opening every run's timeline. No network.
(function () {
  "use strict";
  function cellValue(row, index) {
    var text = row.children[index] ? row.children[index].textContent.trim() : "";
    var number = parseFloat(text.replace(/[$,%]/g, "").replace(/,/g, ""));
    return isNaN(number) ? text.toLowerCase() : number;
  }
  function sortBy(table, index, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var ascending = !th.classList.contains("sorted-asc");
    rows.sort(function (a, b) {
      var x = cellValue(a, index), y = cellValue(b, index);
      if (typeof x === typeof y) { return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1); }
      return (typeof x === "number" ? -1 : 1) * (ascending ? 1 : -1);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) {
      cell.classList.remove("sorted-asc", "sorted-desc");
    });
    th.classList.add(ascending ? "sorted-asc" : "sorted-desc");
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.addEventListener("click", function () { sortBy(table, index, th); });
    });
  });
  var toggle = document.getElementById("toggle-runs");
  if (toggle) {
    toggle.addEventListener("click", function () {
      var runs = document.querySelectorAll("details.run");
      var open = toggle.textContent === "open all";
      runs.forEach(function (run) { run.open = open; });
      toggle.textContent = open ? "close all" : "open all";
    });
  }
  document.body.setAttribute("data-ready", "true");
})();
