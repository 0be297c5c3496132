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

  // every action goes to the API: the session cookie and its CSRF token; {ok, status, data}
  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json"},
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) { return {ok: r.ok, status: r.status, data: data}; });
    });
  }

  // the start form: the same request as the API's (and the rerun button's): runbook, params, limit, check
  function params(text) {
    var out = {}, bad = [];
    text.split("\n").forEach(function (line, i) {
      var t = line.trim();
      if (!t || t.charAt(0) === "#") return;
      var at = t.indexOf("=");
      if (at < 1) { bad.push(i + 1); return; }
      out[t.slice(0, at).trim()] = t.slice(at + 1).trim();
    });
    return {params: out, bad: bad};
  }

  ready(function () {
    var form = document.getElementById("start-form");
    if (!form) return;
    var select = document.getElementById("start-runbook"), box = document.getElementById("start-params");
    var error = document.getElementById("start-error"), submit = document.getElementById("start-submit");
    function chosen() {
      var o = select.options[select.selectedIndex];
      var declared = o.dataset.params ? o.dataset.params.split("\n") : [];
      document.getElementById("start-declared").textContent = declared.length ? declared.join(", ") : "none";
      document.getElementById("start-about").textContent = (o.dataset.description || "") + (o.dataset.targets ? " Targets: " + o.dataset.targets + "." : "");
      box.placeholder = declared.join("\n");
    }
    select.addEventListener("change", chosen);
    chosen();
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var parsed = params(box.value);
      if (parsed.bad.length) {
        error.textContent = "Parameters: line " + parsed.bad.join(", ") + " is not name=value.";
        error.hidden = false; box.focus(); return;
      }
      var limit = document.getElementById("start-limit").value.trim();
      var body = {runbook: select.value, params: parsed.params, limit: limit || null,
                  check: document.getElementById("start-check").checked};
      submit.disabled = true; error.hidden = true;
      post(form.dataset.start, body).then(function (res) {
        if (res.ok && res.data && res.data.id) { window.location.href = "/runs/" + encodeURIComponent(res.data.id); return; }
        submit.disabled = false;
        error.textContent = "Not started: " + message(res.data, res.status);
        error.hidden = false; error.focus();
      }).catch(function (err) { submit.disabled = false; error.textContent = "Not started: " + err; error.hidden = false; });
    });
  });

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
    post(button.dataset.post, body).then(function (res) {
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
