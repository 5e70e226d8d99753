// vidattack pages: table sorting and filtering, sections opened from links, videos played in sync.
// Data is never turned into markup here: only textContent and dataset values are read.
"use strict";
(function () {
  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) return "";
    var v = cell.getAttribute("data-v");
    return v !== null ? v : cell.textContent.trim();
  }
  function compare(a, b) {
    var x = parseFloat(a), y = parseFloat(b);
    var numeric = a !== "" && b !== "" && !isNaN(x) && !isNaN(y) && isFinite(a) && isFinite(b);
    if (numeric) return x - y;
    return a.localeCompare(b, undefined, { numeric: true, sensitivity: "base" });
  }
  function sortBy(table, index, th) {
    var body = table.tBodies[0];
    var descending = th.getAttribute("aria-sort") === "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var d = compare(cellValue(r1, index), cellValue(r2, index));
      return descending ? -d : d;
    });
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) { frag.appendChild(r); });
    body.appendChild(frag);
  }
  function setupSorting(table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      var button = th.querySelector("button");
      if (button) button.addEventListener("click", function () { sortBy(table, index, th); });
    });
  }
  function setupFilter(table) {
    var text = document.getElementById("filter"), show = document.getElementById("show");
    var count = document.getElementById("shown");
    if (!text) return;
    function apply() {
      var q = text.value.trim().toLowerCase(), which = show ? show.value : "all", n = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        var ok = (!q || r.textContent.toLowerCase().indexOf(q) >= 0) &&
                 (which === "all" || r.getAttribute("data-outcome") === which);
        r.hidden = !ok;
        if (ok) n += 1;
      });
      if (count) count.textContent = n + " of " + table.tBodies[0].rows.length + " shown";
    }
    text.addEventListener("input", apply);
    if (show) show.addEventListener("change", apply);
    apply();
  }
  function openFromHash() {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id && document.getElementById(id);
    if (el && el.tagName === "DETAILS") { fill(el); el.open = true; el.scrollIntoView(); }
  }
  function setupPair(pair) {
    var videos = pair.querySelectorAll("video"), button = pair.parentNode.querySelector("button.play");
    if (videos.length !== 2) return;
    var lead = videos[0], other = videos[1];
    function together(fn) { fn(lead); fn(other); }
    if (button) button.addEventListener("click", function () {
      if (lead.paused) {
        other.currentTime = lead.currentTime;
        together(function (v) { var p = v.play(); if (p && p.catch) p.catch(function () {}); });
      } else {
        together(function (v) { v.pause(); });
      }
    });
    lead.addEventListener("play", function () { if (other.paused) other.play().catch(function () {}); });
    lead.addEventListener("pause", function () { other.pause(); });
    lead.addEventListener("seeked", function () { other.currentTime = lead.currentTime; });
    lead.addEventListener("timeupdate", function () {
      // keep the adversarial video within a frame or two of the clean one
      if (!lead.paused && Math.abs(other.currentTime - lead.currentTime) > 0.1) other.currentTime = lead.currentTime;
    });
  }
  // a section's body waits in <template id="t-ID"> until the section is first opened
  function fill(d) {
    var t = document.getElementById("t-" + d.id);
    if (!t || d.getAttribute("data-filled")) return;
    d.appendChild(t.content.cloneNode(true));
    d.setAttribute("data-filled", "1");
    d.querySelectorAll(".pair").forEach(setupPair);
  }
  document.addEventListener("toggle", function (e) {
    var d = e.target;
    if (d.tagName === "DETAILS" && d.open) {
      fill(d);
      d.querySelectorAll("video[preload=none]").forEach(function (v) { v.preload = "metadata"; });
    }
  }, true);
  document.querySelectorAll("table.sortable").forEach(function (t) { setupSorting(t); setupFilter(t); });
  document.querySelectorAll(".pair").forEach(setupPair);
  window.addEventListener("hashchange", openFromHash);
  openFromHash();
})();
