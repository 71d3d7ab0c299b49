{% raw %}
(function () {
  "use strict";
  var PAGE = 100;
  var mode = document.body.getAttribute("data-mode");

  function matches(row, p) {
    var reward = row.getAttribute("data-reward");
    var r = reward === "" ? null : parseFloat(reward);
    if (p.get("failed") && row.getAttribute("data-passed") === "1") return false;
    if (p.get("infra") && row.getAttribute("data-infra") !== "1") return false;
    if (p.get("task") && row.getAttribute("data-task") !== p.get("task")) return false;
    if (p.get("min") && (r === null || r < parseFloat(p.get("min")))) return false;
    if (p.get("max") && (r === null || r > parseFloat(p.get("max")))) return false;
    return true;
  }

  function formParams(form) {
    var p = new URLSearchParams();
    new FormData(form).forEach(function (v, k) { if (v !== "") p.set(k, v); });
    return p;
  }

  function setForm(form, p) {
    form.querySelectorAll("input[type=checkbox]").forEach(function (el) { el.checked = !!p.get(el.name); });
    form.querySelectorAll("select, input[type=number]").forEach(function (el) { el.value = p.get(el.name) || ""; });
  }

  function applyFilter(section, p) {
    var run = section.id.replace("view-run-", "");
    var rows = section.querySelectorAll("tr.rollout-row");
    var page = parseInt(p.get("page") || "0", 10) || 0;
    var hits = [];
    rows.forEach(function (row) { if (matches(row, p)) hits.push(row); });
    var pages = Math.max(1, Math.ceil(hits.length / PAGE));
    if (page >= pages) page = pages - 1;
    var start = page * PAGE, end = Math.min(hits.length, start + PAGE);
    rows.forEach(function (row) { row.classList.add("hidden"); });
    for (var i = start; i < end; i++) hits[i].classList.remove("hidden");
    var pager = document.getElementById("pager-" + run);
    if (!pager) return;
    pager.textContent = "";
    var text = hits.length ? "rollouts " + (start + 1) + "–" + end + " of " + hits.length : "no rollouts";
    if (hits.length !== rows.length) text += " matching (of " + rows.length + ")";
    pager.appendChild(document.createTextNode(text + " "));
    function link(label, to, cls) {
      var q = new URLSearchParams(p); q.set("page", String(to));
      var a = document.createElement("a"); a.href = "#run-" + run + "?" + q.toString();
      a.textContent = label; a.className = cls; pager.appendChild(a); pager.appendChild(document.createTextNode(" "));
    }
    if (page > 0) link("‹ previous", page - 1, "prev-page");
    if (page < pages - 1) link("next ›", page + 1, "next-page");
  }

  function route() {
    var h = location.hash.replace(/^#/, "") || "runs";
    var q = h.indexOf("?");
    var id = q < 0 ? h : h.slice(0, q);
    var p = new URLSearchParams(q < 0 ? "" : h.slice(q + 1));
    document.querySelectorAll("section.view").forEach(function (s) { s.classList.add("hidden"); });
    var m = id.match(/^r-(\d+)-(\d+)$/);
    if (m) {
      var view = document.getElementById("view-rollout");
      var src = document.getElementById("t-" + m[1] + "-" + m[2]);
      if (src) {
        view.innerHTML = src.textContent;
      } else {
        view.innerHTML = '<div class="nav"><a class="back-link" href="#run-' + m[1] + '">← back</a></div>' +
          '<div class="notice">This transcript is not embedded in this report (over the size limit). ' +
          "Run <code>hermes view RUN_DIR</code> to serve every transcript.</div>";
      }
      view.classList.remove("hidden");
      var h1 = view.querySelector("h1");
      document.title = (h1 ? h1.textContent.trim() : "rollout") + " · hermes view";
      window.scrollTo(0, 0);
      return;
    }
    var section = document.getElementById("view-" + id) || document.getElementById("view-runs");
    section.classList.remove("hidden");
    var form = section.querySelector("form.filters");
    if (form) { setForm(form, p); applyFilter(section, p); }
    var title = section.querySelector("h1");
    document.title = (title ? title.textContent.trim() : "runs") + " · hermes view";
  }

  // Click a column header to sort by it (again: reverse). Numbers sort as numbers, "-" last.
  function cellValue(row, i) {
    var cell = row.children[i];
    var t = cell ? cell.textContent.trim() : "";
    if (t === "" || t === "-" || t === "\u2013") return null;
    var m = t.match(/^(\d+)m([\d.]+)s$/);
    if (m) return 60 * parseFloat(m[1]) + parseFloat(m[2]);
    if (/^[+-]?[\d,]*\.?\d+(%|s)?$/.test(t)) return parseFloat(t.replace(/[,%s]/g, ""));
    return t;
  }
  function makeSortable(table, after) {
    var head = table.tHead && table.tHead.rows[table.tHead.rows.length - 1];
    if (!head || table.tHead.rows.length > 1) return;
    Array.prototype.forEach.call(head.cells, function (th, i) {
      th.style.cursor = "pointer";
      th.title = "sort";
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.filter.call(body.rows, function (r) { return !r.classList.contains("total"); });
        var total = Array.prototype.filter.call(body.rows, function (r) { return r.classList.contains("total"); });
        var dir = th.getAttribute("data-sort") === "asc" ? -1 : 1;
        Array.prototype.forEach.call(head.cells, function (c) { c.removeAttribute("data-sort"); });
        th.setAttribute("data-sort", dir === 1 ? "asc" : "desc");
        rows.sort(function (a, b) {
          var x = cellValue(a, i), y = cellValue(b, i);
          if (x === null) return y === null ? 0 : 1;
          if (y === null) return -1;
          if (typeof x === "number" && typeof y === "number") return dir * (x - y);
          return dir * String(x).localeCompare(String(y));
        });
        rows.concat(total).forEach(function (r) { body.appendChild(r); });
        if (after) after();
      });
    });
  }
  document.querySelectorAll("table.task-table, #run-list").forEach(function (t) { makeSortable(t); });
  if (mode === "static") {
    document.querySelectorAll("table.rollout-table").forEach(function (t) { makeSortable(t, route); });
  }

  // Filters apply at once (no wait for the asynchronous hashchange event) and stay linkable.
  function navigate(hash) {
    if (location.hash !== hash) history.pushState(null, "", hash);
    route();
  }

  if (mode === "static") {
    document.querySelectorAll("form.filters").forEach(function (form) {
      var run = form.getAttribute("data-run");
      function go(ev) {
        if (ev) ev.preventDefault();
        var q = formParams(form).toString();
        navigate("#run-" + run + (q ? "?" + q : ""));
      }
      form.addEventListener("submit", go);
      form.addEventListener("change", go);
      var clear = form.querySelector("a.clear-filter");
      if (clear) clear.addEventListener("click", function (ev) { ev.preventDefault(); navigate("#run-" + run); });
    });
    // In-page links route at once too; back / forward arrive as hashchange / popstate.
    document.addEventListener("click", function (ev) {
      var a = ev.target.closest ? ev.target.closest("a[href^='#']") : null;
      if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
      ev.preventDefault();
      navigate(a.getAttribute("href"));
    });
    window.addEventListener("hashchange", route);
    window.addEventListener("popstate", route);
    route();
  } else {
    document.querySelectorAll("form.filters").forEach(function (form) {
      form.addEventListener("change", function () { form.requestSubmit ? form.requestSubmit() : form.submit(); });
    });
  }
})();
{% endraw %}
