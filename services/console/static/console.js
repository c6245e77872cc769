// lain console: live updates over Server-Sent Events. No framework, no
// inline script (the pages' CSP forbids it). Server-rendered HTML
// fragments are trusted (escaped by the templates); log lines are not,
// and are only ever set as text.
"use strict";

(function () {
  // Says so when a stream stopped for good (the session ended, or
  // console answered with an error page): the page is no longer live.
  function watchClosed(es, before, what) {
    es.addEventListener("error", function () {
      if (es.readyState !== EventSource.CLOSED || before.dataset.stopped) return;
      before.dataset.stopped = "1";
      var p = document.createElement("p");
      p.className = "note";
      p.setAttribute("role", "status");
      p.textContent = what + " stopped updating. Reload the page.";
      before.parentNode.insertBefore(p, before);
    });
  }

  // The instance tables (server-rendered, escaped), the summary line, and
  // on a deployment's page its outcome.
  document.querySelectorAll("[data-live]").forEach(function (el) {
    var es = new EventSource(el.dataset.live);
    var summary = document.querySelector("[data-summary]");
    var updates = 0;
    es.addEventListener("procs", function (e) {
      el.innerHTML = e.data;
      updates += 1;
      el.dataset.updates = String(updates);
    });
    es.addEventListener("summary", function (e) {
      if (summary && summary.textContent !== e.data) summary.textContent = e.data;
    });
    es.addEventListener("done", function (e) {
      var d = JSON.parse(e.data);
      var badge = document.querySelector("[data-outcome]");
      var error = document.querySelector("[data-error]");
      if (badge) {
        badge.textContent = d.label;
        badge.dataset.outcome = d.state;
        badge.className = "badge " + d.class;
      }
      if (error) error.textContent = d.error || "";
    });
    watchClosed(es, el, "This list");
  });

  // One instance's output.
  document.querySelectorAll("[data-log]").forEach(function (log) {
    var state = document.querySelector("[data-log-state]");
    var pause = document.querySelector("[data-log-pause]");
    var paused = false;
    var held = [];
    var MAX = 2000;
    function add(rec) {
      var row = document.createElement("div");
      row.className = "logline " + (rec.stream === "stderr" ? "stderr" : "stdout");
      if (rec.time) {
        var t = document.createElement("span");
        t.className = "muted";
        t.textContent = rec.time + " ";
        row.appendChild(t);
      }
      row.appendChild(document.createTextNode(rec.line == null ? "" : String(rec.line)));
      var stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.appendChild(row);
      while (log.childNodes.length > MAX) log.removeChild(log.firstChild);
      if (stick) log.scrollTop = log.scrollHeight;
    }
    var es = new EventSource(log.dataset.log);
    es.onopen = function () { state.textContent = "Live."; };
    es.addEventListener("line", function (e) {
      var rec = JSON.parse(e.data);
      if (paused) { held.push(rec); if (held.length > MAX) held.shift(); } else add(rec);
    });
    es.addEventListener("failure", function (e) {
      state.textContent = "Stream error: " + JSON.parse(e.data).error;
    });
    watchClosed(es, log, "The log");
    es.addEventListener("end", function () {
      state.textContent = "The stream ended (the instance stopped, or the time limit). Reload to reconnect.";
      es.close();
    });
    pause.addEventListener("click", function () {
      paused = !paused;
      pause.textContent = paused ? "Resume" : "Pause";
      if (!paused) { held.forEach(add); held = []; }
    });
  });

  // Confirmation pages: focus the question, so a keyboard user starts there.
  var q = document.querySelector("[data-autofocus]");
  if (q) q.focus();
})();
