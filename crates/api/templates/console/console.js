// The console's only script: copy buttons, and live reservation cards that follow
// /ui/events (server-sent events). It writes text only (textContent), never HTML.
"use strict";

(function () {
  function show(row, on) {
    if (row) row.hidden = !on;
  }

  function setText(card, field, text) {
    var el = card.querySelector('[data-field="' + field + '"]');
    if (el && el.textContent !== text) el.textContent = text;
    show(card.querySelector('[data-row="' + field + '"]'), text !== "");
  }

  function update(card, job) {
    var status = card.querySelector('[data-field="status"]');
    if (status && status.textContent !== job.status) {
      status.textContent = job.status;
      status.className = "status " + job.status;
    }
    setText(card, "queue", job.queue);
    setText(card, "detail", job.detail);
    setText(card, "ends", job.ends);
    setText(card, "idle", job.idle);
    setText(card, "ssh", job.ssh || "");
    var jupyter = card.querySelector('[data-field="jupyter"]');
    if (jupyter) {
      if (job.jupyter) jupyter.setAttribute("href", job.jupyter);
      show(card.querySelector('[data-row="jupyter"]'), !!job.jupyter);
    }
    show(card.querySelector('[data-row="actions"]'), job.live);
  }

  document.addEventListener("click", function (ev) {
    var button = ev.target.closest("button[data-copy]");
    if (!button) return;
    var code = button.parentElement.querySelector('[data-field="ssh"]');
    var done = function (text) {
      button.textContent = text;
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    };
    navigator.clipboard.writeText(code.textContent).then(
      function () { done("Copied"); },
      function () { done("Select and copy"); }
    );
  });

  if (!window.EventSource) return;
  var table = document.querySelector("[data-capacity]");
  if (table) {
    var feed = new EventSource("/ui/events?capacity");
    feed.addEventListener("capacity", function (ev) {
      var now = JSON.parse(ev.data);
      now[0].forEach(function (t) {
        var row = table.querySelector('[data-type="' + t.name + '"]');
        if (!row) return;
        ["free", "total", "in_use", "queued", "largest", "wait"].forEach(function (f) {
          setText(row, f, t[f]);
        });
      });
      setText(document, "note", now[1]);
    });
    feed.addEventListener("signedout", function () {
      feed.close();
      window.location.reload();
    });
  }
  var live = document.querySelector("[data-live]");
  if (!live) return;
  var source = new EventSource("/ui/events");
  source.addEventListener("jobs", function (ev) {
    JSON.parse(ev.data).forEach(function (job) {
      var card = live.querySelector('[data-job="' + job.id + '"]');
      if (card) {
        update(card, job);
      } else if (live.hasAttribute("data-list")) {
        // Made elsewhere (the CLI, another tab): offer to show it rather than move the page.
        show(document.querySelector('[data-row="new"]'), true);
      }
    });
    live.setAttribute("data-updated", new Date().toISOString());
  });
  source.addEventListener("signedout", function () {
    source.close();
    window.location.reload();
  });
})();
