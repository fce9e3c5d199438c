/* runkit dashboard: what the pages do in the browser. Plain JavaScript, no build step.

   Pages are rendered by the server; this script signs in and out, sends actions and new
   runs to the JSON API (fetch, same-origin credentials, the X-Runkit-CSRF header), keeps the
   new-run form and its raw JSON in step, and follows a run's log (pages by cursor, then a
   live EventSource). Live tables and the run summary refresh through htmx attributes.
   Every text it shows goes in through textContent: nothing from the server becomes markup. */
(function () {
  "use strict";

  var body = document.body;
  var ROOT = (body && body.dataset.root) || "";
  var HOME = ROOT + "/ui/";

  // ------------------------------------------------------------------ helpers ----------
  function byId(id) {
    return document.getElementById(id);
  }

  function show(el, text) {
    if (!el) return;
    el.textContent = text;
    el.hidden = false;
  }

  function hide(el) {
    if (!el) return;
    el.textContent = "";
    el.hidden = true;
  }

  function here() {
    return window.location.pathname + window.location.search;
  }

  function toSignIn() {
    window.location.assign(ROOT + "/ui/sign-in?next=" + encodeURIComponent(here()));
  }

  /* A call of the JSON API: {status, ok, data} (data: the parsed JSON answer, or null). */
  function call(method, url, payload) {
    var headers = { "X-Runkit-CSRF": "1", Accept: "application/json" };
    var init = { method: method, credentials: "same-origin", headers: headers };
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    return fetch(url, init).then(
      function (response) {
        return response.text().then(function (text) {
          var data = null;
          if (text) {
            try {
              data = JSON.parse(text);
            } catch (e) {
              data = null;
            }
          }
          return { status: response.status, ok: response.ok, data: data };
        });
      },
      function () {
        return { status: 0, ok: false, data: { detail: "The server could not be reached." } };
      }
    );
  }

  function locText(loc) {
    return (loc || []).join(".");
  }

  /* The people's text of an error answer: its detail, or each problem of a 422. */
  function detailOf(answer) {
    var data = answer.data;
    if (data && typeof data.detail === "string") {
      var text = data.detail;
      if (answer.status === 409 && Array.isArray(data.allowed)) {
        text += data.allowed.length
          ? " (allowed now: " + data.allowed.join(", ") + ")"
          : " (no action is allowed now)";
      }
      return text;
    }
    if (data && Array.isArray(data.detail)) {
      return data.detail
        .map(function (d) {
          return (d.loc ? locText(d.loc) + ": " : "") + d.msg;
        })
        .join("\n");
    }
    return "The request failed (HTTP " + answer.status + ").";
  }

  // ------------------------------------------------------------------ signing in/out ---
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("#sign-out");
    if (!button) return;
    button.disabled = true;
    call("DELETE", ROOT + "/api/v1/sessions").then(function () {
      window.location.assign(ROOT + "/ui/sign-in");
    });
  });

  function initSignIn() {
    var form = byId("sign-in-form");
    if (!form) return;
    var error = byId("sign-in-error");
    var field = byId("api-key");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      hide(error);
      var key = field.value.trim();
      if (!key) {
        show(error, "Enter an API key.");
        field.focus();
        return;
      }
      var button = byId("sign-in");
      button.disabled = true;
      call("POST", form.dataset.apiUrl, { apiKey: key }).then(function (answer) {
        button.disabled = false;
        if (answer.ok) {
          window.location.assign(form.dataset.next || HOME);
          return;
        }
        show(
          error,
          answer.status === 401 ? "That key was not accepted. Check it and try again." : detailOf(answer)
        );
        field.focus();
        field.select();
      });
    });
  }

  // ------------------------------------------------------------------ htmx -------------
  var stopPolling = false;
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (stopPolling) event.preventDefault();
  });

  function refreshSummary() {
    var run = byId("run");
    if (!run || !window.htmx || !byId("run-summary") || stopPolling) return;
    window.htmx.ajax("GET", run.dataset.summaryUrl, { target: "#run-summary", swap: "outerHTML" });
  }

  // ------------------------------------------------------------------ the run page -----
  function initRun() {
    var run = byId("run");
    if (!run) return;
    var error = byId("action-error");
    var dialog = byId("confirm-delete");

    function act(action, button) {
      var payload;
      var reason = byId("decision-reason");
      if (action === "approve" || action === "reject") {
        var text = reason ? reason.value.trim() : "";
        payload = text ? { reason: text } : {};
      }
      hide(error);
      if (button) button.disabled = true;
      return call("POST", run.dataset.apiUrl + "/" + action, payload).then(function (answer) {
        if (button) button.disabled = false;
        if (answer.status === 401) return toSignIn();
        if (answer.ok) {
          if (reason && payload) reason.value = "";
        } else {
          show(error, detailOf(answer));
        }
        refreshSummary();
      });
    }

    run.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-action]");
      if (!button || !run.contains(button)) return;
      var action = button.dataset.action;
      if (action === "delete") {
        hide(error);
        if (dialog && dialog.showModal) dialog.showModal();
        return;
      }
      act(action, button);
    });

    var yes = byId("confirm-delete-yes");
    if (yes) {
      yes.addEventListener("click", function () {
        yes.disabled = true;
        stopPolling = true;
        call("DELETE", run.dataset.apiUrl).then(function (answer) {
          yes.disabled = false;
          if (answer.ok || answer.status === 404) {
            window.location.assign(run.dataset.runsUrl || HOME);
            return;
          }
          stopPolling = false;
          if (dialog && dialog.open) dialog.close();
          if (answer.status === 401) return toSignIn();
          show(error, detailOf(answer));
          refreshSummary();
        });
      });
    }
  }

  // ------------------------------------------------------------------ the log ----------
  var LEVELS = ["debug", "info", "warning", "error"];
  var MAX_SHOWN = 5000;

  function pad(n, width) {
    var s = String(n);
    while (s.length < width) s = "0" + s;
    return s;
  }

  function clock(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    return (
      pad(d.getUTCHours(), 2) + ":" + pad(d.getUTCMinutes(), 2) + ":" +
      pad(d.getUTCSeconds(), 2) + "." + pad(d.getUTCMilliseconds(), 3)
    );
  }

  function span(cls, text) {
    var el = document.createElement("span");
    el.className = cls;
    el.textContent = text;
    return el;
  }

  function logItem(entry) {
    var level = LEVELS.indexOf(entry.level) >= 0 ? entry.level : "info";
    var li = document.createElement("li");
    li.className = "log-entry level-" + level;
    li.dataset.id = entry.id;
    li.dataset.level = entry.level;
    var time = document.createElement("time");
    time.className = "log-time";
    time.dateTime = entry.occurredAt;
    time.title = entry.occurredAt + " (attempt " + entry.attempt + ")";
    time.textContent = clock(entry.occurredAt);
    li.appendChild(time);
    li.appendChild(document.createTextNode(" "));
    li.appendChild(span("log-level", entry.level));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(span("log-message", entry.message));
    if (entry.event) {
      li.appendChild(document.createTextNode(" "));
      li.appendChild(span("log-event", entry.event));
    }
    if (entry.data && Object.keys(entry.data).length) {
      li.appendChild(document.createTextNode(" "));
      var code = document.createElement("code");
      code.className = "log-data";
      code.textContent = JSON.stringify(entry.data);
      li.appendChild(code);
    }
    return li;
  }

  function initLogs() {
    var panel = byId("logs-panel");
    var list = byId("logs");
    if (!panel || !list || !panel.dataset.logsUrl) return;
    var scroller = byId("logs-scroll");
    var follow = byId("follow");
    var level = byId("log-level");
    var state = byId("logs-state");
    var seen = new Set();
    Array.prototype.forEach.call(list.querySelectorAll(".log-entry"), function (li) {
      seen.add(li.dataset.id);
    });
    var next = panel.dataset.next || "";
    var more = panel.dataset.more === "true";
    var loading = false;
    var source = null;
    var ended = false;
    var retryTimer = null;
    var dropped = false;
    var retriesAtEnd = -1;

    function retries() {
      var summary = byId("run-summary");
      return summary ? Number(summary.dataset.retryCount || 0) : 0;
    }

    function terminal() {
      var summary = byId("run-summary");
      return !!summary && summary.dataset.terminal === "true";
    }

    function say(text) {
      if (state) state.textContent = text;
    }

    function atEnd() {
      return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
    }

    function keepNewestInView() {
      if (follow && follow.checked) scroller.scrollTop = scroller.scrollHeight;
    }

    function add(entry) {
      if (!entry || !entry.id || seen.has(entry.id)) return;
      seen.add(entry.id);
      list.appendChild(logItem(entry));
      next = entry.id;
      while (list.children.length > MAX_SHOWN) {
        list.removeChild(list.firstElementChild);
        dropped = true;
      }
    }

    function loadMore() {
      if (loading || !more) return;
      loading = true;
      say("Loading…");
      var url = panel.dataset.logsUrl + "?limit=500&after=" + encodeURIComponent(next);
      call("GET", url).then(function (answer) {
        loading = false;
        if (answer.status === 401) return toSignIn();
        if (!answer.ok || !answer.data) {
          say("The log could not be read: " + detailOf(answer));
          setTimeout(loadMore, 3000);
          return;
        }
        answer.data.entries.forEach(add);
        more = !!answer.data.hasMore;
        say(dropped ? "Older entries were dropped from view; reload the page to see them." : "");
        keepNewestInView();
        if (more) {
          if (atEnd()) window.setTimeout(loadMore, 0);
        } else {
          stream();
        }
      });
    }

    function stream() {
      if (source || more || ended || !window.EventSource) return;
      if (terminal()) {
        // Caught up with a run that has ended: nothing more will come, unless it is
        // retried (its retry count grows: see the htmx:afterSettle listener below).
        ended = true;
        retriesAtEnd = retries();
        return;
      }
      var url = panel.dataset.streamUrl + "?after=" + encodeURIComponent(next);
      source = new EventSource(url);
      say("Live");
      source.addEventListener("log", function (event) {
        try {
          add(JSON.parse(event.data));
        } catch (e) {
          return;
        }
        keepNewestInView();
      });
      source.addEventListener("end", function (event) {
        ended = true;
        retriesAtEnd = retries();
        source.close();
        source = null;
        var text = "The run ended.";
        try {
          var data = JSON.parse(event.data);
          text = "The run ended: " + (data.displayStatus || data.status) + ".";
        } catch (e) {
          // keep the plain text
        }
        say(text);
        refreshSummary();
      });
      source.addEventListener("open", function () {
        say("Live");
      });
      source.addEventListener("error", function () {
        if (!source || source.readyState !== EventSource.CLOSED) {
          say("Reconnecting…");
          return; // the browser reconnects by itself, sending Last-Event-ID
        }
        // Closed for good (an error answer, or 204 once the run has ended): open again
        // from the last entry shown, unless the run is over.
        source = null;
        if (retryTimer) return;
        retryTimer = window.setTimeout(function () {
          retryTimer = null;
          if (terminal()) {
            say("");
            ended = true;
            retriesAtEnd = retries();
            return;
          }
          stream();
        }, 3000);
      });
    }

    scroller.addEventListener("scroll", function () {
      if (more && atEnd()) loadMore();
    });
    if (follow) {
      follow.addEventListener("change", keepNewestInView);
    }
    if (level) {
      level.addEventListener("change", function () {
        list.dataset.level = level.value;
        keepNewestInView();
      });
      list.dataset.level = level.value;
    }
    // A run retried after it ended (its retry count grew, whether or not it has ended
    // again since): read on from the last entry shown, then follow it live.
    document.addEventListener("htmx:afterSettle", function () {
      if (ended && retries() > retriesAtEnd && !source && !loading) {
        ended = false;
        more = true;
        loadMore();
      }
    });

    if (terminal()) {
      ended = true;
      retriesAtEnd = retries();
    }
    keepNewestInView();
    if (more) {
      if (atEnd() || (follow && follow.checked)) loadMore();
    } else {
      stream();
    }
  }

  // ------------------------------------------------------------------ approvals page ---
  function initApprovals() {
    var table = byId("approvals-table");
    if (!table) return;
    var error = byId("action-error");
    document.addEventListener("click", function (event) {
      var button = event.target.closest("#approvals-table button[data-action]");
      if (!button) return;
      var id = button.dataset.runId;
      var row = button.closest("tr");
      var reasonField = row && row.querySelector("textarea.decision-reason");
      var reason = reasonField ? reasonField.value.trim() : "";
      var url = ROOT + "/api/v1/action-runs/" + encodeURIComponent(id) + "/" + button.dataset.action;
      hide(error);
      button.disabled = true;
      call("POST", url, reason ? { reason: reason } : {}).then(function (answer) {
        button.disabled = false;
        if (answer.status === 401) return toSignIn();
        if (answer.ok) {
          if (row && row.parentNode) row.parentNode.removeChild(row);
          return;
        }
        show(error, "Run " + id.slice(0, 8) + ": " + detailOf(answer));
      });
    });
  }

  // ------------------------------------------------------------------ a new run --------
  function initNewRun() {
    var form = byId("new-run-form");
    if (!form) return;
    var kind = byId("kind");
    var raw = byId("definition-json");
    var rawBox = byId("raw-editor");
    var toggle = byId("raw-toggle");
    var formError = byId("form-error");
    var rawError = byId("definition-json-error");
    var fields = Array.prototype.slice.call(form.querySelectorAll("[data-prop][data-type]"));
    var lastSubmitter = null;

    kind.addEventListener("change", function () {
      window.location.assign(form.dataset.newUrl + "?kind=" + encodeURIComponent(kind.value));
    });

    function rawShown() {
      return !rawBox.hidden;
    }

    function required(el) {
      return el.getAttribute("aria-required") === "true";
    }

    /* {set, value} of one field, or {error}. */
    function read(el) {
      var type = el.dataset.type;
      var text;
      if (type === "boolean") return { set: true, value: el.checked };
      if (type === "enum") {
        var option = el.selectedOptions && el.selectedOptions[0];
        if (!option || !option.dataset.json) return { set: false };
        return { set: true, value: JSON.parse(option.dataset.json) };
      }
      if (type === "integer" || type === "number") {
        text = el.value.trim();
        if (!text) {
          if (el.validity && el.validity.badInput) return { error: "Enter a number." };
          return { set: false };
        }
        var number = Number(text);
        if (!isFinite(number)) return { error: "Enter a number." };
        return { set: true, value: number };
      }
      if (type === "string") {
        if (el.value === "" && !required(el)) return { set: false };
        return { set: true, value: el.value };
      }
      text = el.value.trim();
      if (!text) return { set: false };
      try {
        return { set: true, value: JSON.parse(text) };
      } catch (e) {
        return { error: "Not valid JSON: " + e.message };
      }
    }

    /* The definition the fields hold, over ``base`` (keys no field shows are kept). */
    function fromFields(base) {
      var out = {};
      var errors = {};
      Object.keys(base || {}).forEach(function (k) {
        out[k] = base[k];
      });
      fields.forEach(function (el) {
        var got = read(el);
        var prop = el.dataset.prop;
        if (got.error) errors[prop] = got.error;
        else if (got.set) out[prop] = got.value;
        else delete out[prop];
      });
      return { value: out, errors: errors };
    }

    function setField(el, has, value) {
      var type = el.dataset.type;
      if (type === "boolean") {
        el.checked = has && value === true;
      } else if (type === "enum") {
        var wanted = has ? JSON.stringify(value) : "";
        var found = false;
        Array.prototype.forEach.call(el.options, function (option) {
          if ((option.dataset.json || "") === wanted) {
            option.selected = true;
            found = true;
          }
        });
        if (!found && !has) el.selectedIndex = -1;
      } else if (type === "integer" || type === "number") {
        el.value = has && typeof value === "number" ? String(value) : "";
      } else if (type === "string") {
        el.value = !has || value === null ? "" : typeof value === "string" ? value : JSON.stringify(value);
      } else {
        el.value = has ? JSON.stringify(value, null, 2) : "";
      }
    }

    function toFields(object) {
      fields.forEach(function (el) {
        var prop = el.dataset.prop;
        var has = Object.prototype.hasOwnProperty.call(object, prop);
        setField(el, has, has ? object[prop] : undefined);
      });
    }

    function parseRaw() {
      try {
        var value = JSON.parse(raw.value);
        if (value === null || typeof value !== "object" || Array.isArray(value)) {
          return { error: "The definition must be a JSON object: { ... }." };
        }
        return { value: value };
      } catch (e) {
        return { error: "Not valid JSON: " + e.message };
      }
    }

    function syncRaw() {
      var base = parseRaw();
      var got = fromFields(base.error ? {} : base.value);
      raw.value = JSON.stringify(got.value, null, 2);
    }

    form.addEventListener("input", function (event) {
      var el = event.target;
      if (el === raw) {
        var parsed = parseRaw();
        if (!parsed.error) {
          hide(rawError);
          toFields(parsed.value);
        }
        return;
      }
      if (el.dataset && el.dataset.prop && fields.length) syncRaw();
    });
    form.addEventListener("change", function (event) {
      var el = event.target;
      if (el !== raw && el !== kind && el.dataset && el.dataset.prop && fields.length) syncRaw();
    });

    toggle.addEventListener("click", function () {
      if (rawShown()) {
        var parsed = parseRaw();
        if (parsed.error) {
          show(rawError, parsed.error);
          raw.focus();
          return;
        }
        toFields(parsed.value);
        rawBox.hidden = true;
        toggle.setAttribute("aria-expanded", "false");
        toggle.textContent = "Edit as JSON";
      } else {
        if (fields.length) syncRaw();
        hide(rawError);
        rawBox.hidden = false;
        toggle.setAttribute("aria-expanded", "true");
        toggle.textContent = "Hide JSON";
        raw.focus();
      }
    });

    function clearErrors() {
      Array.prototype.forEach.call(form.querySelectorAll(".field-error"), hide);
      hide(formError);
      fields.forEach(function (el) {
        el.removeAttribute("aria-invalid");
      });
    }

    function fieldError(name, text) {
      var holder = form.querySelector('.field-error[data-for="' + CSS.escape(name) + '"]');
      if (!holder) return false;
      holder.textContent = holder.hidden || !holder.textContent ? text : holder.textContent + "\n" + text;
      holder.hidden = false;
      var input = form.querySelector('[name="' + CSS.escape(name) + '"]');
      if (input) input.setAttribute("aria-invalid", "true");
      return true;
    }

    function showProblems(details) {
      var rest = [];
      details.forEach(function (d) {
        var loc = d.loc || [];
        var msg = d.msg || "invalid";
        var placed = false;
        if (loc[0] === "body" && loc[1] === "definition" && loc.length >= 3) {
          var deeper = loc.slice(3).join(".");
          placed = fieldError("definition." + loc[2], (deeper ? deeper + ": " : "") + msg);
          if (!placed && rawShown()) placed = fieldError("definition", locText(loc.slice(2)) + ": " + msg);
        } else if (loc[0] === "body" && loc[1] === "definition") {
          placed = rawShown() && fieldError("definition", msg);
        } else if (loc[1] === "idempotencyKey" || loc[1] === "idempotency-key") {
          placed = fieldError("idempotencyKey", msg);
        } else if (loc[1] === "concurrencyKey") {
          placed = fieldError("concurrencyKey", msg);
        }
        if (!placed) rest.push((loc.length ? locText(loc) + ": " : "") + msg);
      });
      if (rest.length) show(formError, rest.join("\n"));
      var first = form.querySelector(".field-error:not([hidden]), #form-error:not([hidden])");
      if (first && first.scrollIntoView) first.scrollIntoView({ block: "center" });
    }

    form.addEventListener("click", function (event) {
      var button = event.target.closest("button[type=submit]");
      if (button) lastSubmitter = button;
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      clearErrors();
      var submitter = event.submitter || lastSubmitter;
      var execute = !!(submitter && submitter.dataset.execute === "true");
      var definition;
      if (rawShown()) {
        var parsed = parseRaw();
        if (parsed.error) {
          fieldError("definition", parsed.error);
          raw.focus();
          return;
        }
        definition = parsed.value;
      } else {
        var got = fromFields(fields.length ? {} : parseRaw().value || {});
        var bad = Object.keys(got.errors);
        if (bad.length) {
          bad.forEach(function (prop) {
            fieldError("definition." + prop, got.errors[prop]);
          });
          return;
        }
        definition = got.value;
      }
      var payload = { kind: kind.value, definition: definition };
      var idem = byId("idempotency-key").value;
      var conc = byId("concurrency-key").value;
      if (idem) payload.idempotencyKey = idem;
      if (conc) payload.concurrencyKey = conc;
      var buttons = form.querySelectorAll("button[type=submit]");
      Array.prototype.forEach.call(buttons, function (b) {
        b.disabled = true;
      });
      var url = form.dataset.apiUrl + (execute ? "?execute=true" : "");
      call("POST", url, payload).then(function (answer) {
        Array.prototype.forEach.call(buttons, function (b) {
          b.disabled = false;
        });
        if (answer.ok && answer.data && answer.data.id) {
          window.location.assign(form.dataset.runUrl + encodeURIComponent(answer.data.id));
          return;
        }
        if (answer.status === 401) return toSignIn();
        if (answer.status === 422 && answer.data && Array.isArray(answer.data.detail)) {
          showProblems(answer.data.detail);
          return;
        }
        show(formError, detailOf(answer));
      });
    });
  }

  function init() {
    initSignIn();
    initRun();
    initLogs();
    initApprovals();
    initNewRun();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
