// lain console: live updates over Server-Sent Events. No framework, no
// inline script (the pages' CSP forbids it). Server-rendered HTML
// fragments are trusted (escaped by the templates); log lines are not,
// and are only ever set as text.
"use strict";

(function () {
  // The procs table: replaced by the server's fragment on each change.
  document.querySelectorAll("[data-live]").forEach(function (el) {
    var es = new EventSource(el.dataset.live);
    es.addEventListener("procs", function (e) {
      el.innerHTML = e.data;
      el.dataset.updated = String(Date.now());
    });
  });

  // A deployment's outcome, until it is done.
  document.querySelectorAll("[data-follow]").forEach(function (box) {
    var es = new EventSource(box.dataset.follow);
    var badge = box.querySelector("[data-outcome]");
    var error = box.querySelector("[data-error]");
    es.addEventListener("done", function (e) {
      var d = JSON.parse(e.data);
      var words = { succeeded: "✓ succeeded", failed: "✗ failed", rolled_back: "↶ rolled back" };
      var classes = { succeeded: "ok", failed: "bad", rolled_back: "warn" };
      badge.textContent = words[d.state] || d.state;
      badge.dataset.outcome = d.state;
      badge.className = "badge " + (classes[d.state] || "muted");
      error.textContent = d.error || "";
      es.close();
    });
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
    es.addEventListener("error", function (e) {
      if (e.data) state.textContent = "Stream error: " + JSON.parse(e.data).error;
    });
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
