// opsflow console: live updates and buttons. No framework, no build step.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.content : "";

  function toast(text, bad) {
    var t = document.getElementById("toast");
    if (!t) return;
    t.textContent = text;
    t.className = "toast" + (bad ? " bad" : "");
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.hidden = true; }, bad ? 12000 : 5000);
  }

  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  // the menu of a phone-sized screen
  ready(function () {
    var menu = document.querySelector(".menu"), nav = document.getElementById("nav");
    if (!menu || !nav) return;
    menu.addEventListener("click", function () {
      var open = nav.classList.toggle("open");
      menu.setAttribute("aria-expanded", open ? "true" : "false");
    });
  });

  // buttons: POST to the API with the session's CSRF token
  function message(body, status) {
    if (body && typeof body.message === "string") return body.message;
    if (body && typeof body.detail === "string") return body.detail;
    return "refused (HTTP " + status + ")";
  }

  document.addEventListener("click", function (ev) {
    var button = ev.target.closest ? ev.target.closest("button[data-post]") : null;
    if (!button || button.disabled) return;
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    var body = button.dataset.body ? JSON.parse(button.dataset.body) : {};
    if (button.dataset.comment) {
      var input = document.getElementById(button.dataset.comment);
      if (input && input.value.trim()) body.comment = input.value.trim();
    }
    button.disabled = true;
    fetch(button.dataset.post, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json"},
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) { return {ok: r.ok, status: r.status, data: data}; });
    }).then(function (res) {
      if (!res.ok) {
        button.disabled = false;
        toast(button.textContent.trim() + ": " + message(res.data, res.status), true);
        return;
      }
      var id = res.data && (res.data.id || res.data.run_id);
      if (button.dataset.open && id) { window.location.href = "/runs/" + encodeURIComponent(id); return; }
      toast(button.textContent.trim() + ": done", false);
      var card = button.closest(".card");
      if (card) { card.remove(); return; }
      refresh();
    }).catch(function (err) {
      button.disabled = false;
      toast(button.textContent.trim() + ": " + err, true);
    });
  });

  // a run's page: the grid and the rest follow the run's stream
  var live = null, pending = null, source = null;

  function refresh() {
    if (!live) return;
    var focused = document.activeElement && document.activeElement.id;
    fetch("/runs/" + encodeURIComponent(live.dataset.run) + "/live", {credentials: "same-origin"})
      .then(function (r) {
        if (r.status === 401) { window.location.href = "/login?next=" + encodeURIComponent(location.pathname); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html === null || html === undefined) return;
        var scroll = live.querySelector(".grid-wrap"), left = scroll ? scroll.scrollLeft : 0;
        var typed = document.getElementById("comment"), comment = typed ? typed.value : "";
        live.innerHTML = html;
        var again = live.querySelector(".grid-wrap");
        if (again) again.scrollLeft = left;
        var input = document.getElementById("comment");
        if (input && comment) input.value = comment;
        if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
        var ended = !live.querySelector(".live-dot");
        if (ended) { live.dataset.live = "no"; stop(); }
      });
  }

  function soon() {
    if (pending) return;
    pending = setTimeout(function () { pending = null; refresh(); }, 150);
  }

  function stop() {
    if (source) { source.close(); source = null; }
    if (live && live.poll) { clearInterval(live.poll); live.poll = null; }
  }

  ready(function () {
    live = document.getElementById("live");
    if (!live || live.dataset.live !== "yes") return;
    if (window.EventSource) {
      source = new EventSource("/api/v1/runs/" + encodeURIComponent(live.dataset.run) + "/stream");
      source.onmessage = soon;
      ["started", "result", "waiting"].forEach(function (t) { source.addEventListener(t, soon); });
      source.addEventListener("end", function () { stop(); refresh(); });
      source.onerror = function () { if (source && source.readyState === 2) source = null; };
    }
    // approvals and status changes between results: look again every few seconds while the run lasts
    live.poll = setInterval(refresh, 4000);
  });

  // a grid cell: its output in the panel below, without leaving the page
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest ? ev.target.closest("a[data-output]") : null;
    if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    ev.preventDefault();
    fetch(a.dataset.output, {credentials: "same-origin"}).then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        document.getElementById("output-body").innerHTML = html;
        document.querySelectorAll("td.cell.selected").forEach(function (c) { c.classList.remove("selected"); });
        a.parentNode.classList.add("selected");
        var panel = document.getElementById("output");
        panel.scrollIntoView({block: "nearest"});
        panel.focus({preventScroll: true});
      });
  });

  // the service-levels report: its frame as tall as the report
  ready(function () {
    var frame = document.getElementById("report");
    if (!frame) return;
    frame.addEventListener("load", function () {
      try { frame.style.height = (frame.contentDocument.documentElement.scrollHeight + 24) + "px"; } catch (e) { /* cross-origin: keep 80vh */ }
    });
  });
})();
