/* NeonHub dashboard: the parts both pages share.
 *
 * - api(): the REST API with the signed-in session (CSRF header, envelope, errors);
 * - LiveSocket: the /ws/agents/ socket, resubscribing and reconnecting with backoff; every
 *   frame is also a document "neonhub:frame" event, and a reconnection "neonhub:reconnect";
 * - RunBoard: progress bars of runs in progress; Feed: the event list;
 * - formatting of times and durations, a tiny DOM builder, the schedule pause/resume button;
 * - openDialog() and form fields that show the API's per-field errors; the pause and resume dialogs.
 *
 * Plain browser JavaScript (no build step); everything hangs off window.NeonHub.
 */
(function () {
  "use strict";

  const NH = (window.NeonHub = window.NeonHub || {});

  // --- DOM ----------------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function icon(name, extra) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "icon" + (extra ? " " + extra : ""));
    svg.setAttribute("aria-hidden", "true");
    const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
    use.setAttribute("href", "#i-" + name);
    svg.append(use);
    return svg;
  }

  function fill(node, ...children) {
    node.replaceChildren();
    return append(node, children);
  }

  // --- formatting ---------------------------------------------------------------------------

  // 24-hour times: shorter, and unambiguous in a log.
  const clockFormat = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  });
  const shortFormat = new Intl.DateTimeFormat(undefined, {
    weekday: "short",
    day: "numeric",
    month: "short",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });
  const weekdayFormat = new Intl.DateTimeFormat(undefined, {
    weekday: "short",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });
  const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });

  function toDate(value) {
    if (!value) return null;
    const date = value instanceof Date ? value : new Date(value);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  function clock(value) {
    const date = toDate(value);
    return date ? clockFormat.format(date) : "";
  }

  function dateTime(value) {
    const date = toDate(value);
    return date ? shortFormat.format(date) : "";
  }

  /** "Fri 09:00" within the coming week, else the date too. */
  function soon(value) {
    const date = toDate(value);
    if (!date) return "";
    const ahead = date.getTime() - Date.now();
    return ahead > -86400000 && ahead < 6 * 86400000 ? weekdayFormat.format(date) : shortFormat.format(date);
  }

  function localZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (error) {
      return "";
    }
  }

  function fullDate(value) {
    const date = toDate(value);
    return date ? fullFormat.format(date) : "";
  }

  function relative(value, now) {
    const date = toDate(value);
    if (!date) return "";
    const seconds = Math.round((date.getTime() - (now || Date.now())) / 1000);
    const abs = Math.abs(seconds);
    if (abs < 5) return seconds >= 0 ? "now" : "just now";
    let text;
    if (abs < 60) text = abs + " s";
    else if (abs < 3600) text = Math.round(abs / 60) + " min";
    else if (abs < 86400) {
      const hours = Math.floor(abs / 3600);
      const minutes = Math.round((abs % 3600) / 60);
      text = hours + " h" + (minutes && hours < 10 ? " " + minutes + " min" : "");
    } else text = Math.round(abs / 86400) + " d";
    return seconds > 0 ? "in " + text : text + " ago";
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return "";
    if (ms < 1000) return Math.round(ms) + " ms";
    const seconds = ms / 1000;
    if (seconds < 60) return (seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)) + " s";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + Math.round(seconds % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function titleCase(text) {
    return text ? text.charAt(0) + text.slice(1).toLowerCase() : "";
  }

  /** A <time> showing a relative time ("in 4 min") that keeps itself current. */
  function timeAgo(value, extraClass) {
    const date = toDate(value);
    if (!date) return null;
    return h("time", {
      datetime: date.toISOString(),
      title: fullDate(date),
      class: extraClass,
      "data-relative": "",
      text: relative(date),
    });
  }

  function refreshRelativeTimes(root) {
    const now = Date.now();
    for (const node of (root || document).querySelectorAll("time[data-relative]")) {
      node.textContent = relative(node.getAttribute("datetime"), now);
    }
  }

  // --- announcements and toasts -------------------------------------------------------------

  function announce(text) {
    const region = document.getElementById("announcer");
    if (!region) return;
    // Clearing first makes screen readers read a repeated sentence again.
    region.textContent = "";
    window.setTimeout(() => {
      region.textContent = text;
    }, 50);
  }

  function toast(text, kind) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const item = h("div", { class: "toast", role: kind === "error" ? "alert" : "status" }, text);
    item.dataset.kind = kind || "info";
    box.append(item);
    window.setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
  }

  // --- REST API -----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status, details, retryAfter) {
      super(message);
      this.status = status;
      this.details = details || null;
      this.retryAfter = retryAfter ? Number(retryAfter) : null;
    }
  }

  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const [key, ...rest] = part.trim().split("=");
      if (key === name) return decodeURIComponent(rest.join("="));
    }
    return "";
  }

  function csrfToken() {
    const name = document.body.dataset.csrfCookie || "csrftoken";
    const fromCookie = cookie(name);
    if (fromCookie) return fromCookie;
    // CSRF_COOKIE_HTTPONLY hides the cookie; the page's own forms carry a token too.
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new ApiError("The server could not be reached.", 0);
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch (error) {
      payload = null;
    }
    if (!response.ok || !payload || payload.success === false) {
      let message = (payload && payload.error) || "Request failed (HTTP " + response.status + ").";
      if (response.status === 401 || response.status === 403) {
        message = (payload && payload.error) || "You are signed out. Reload the page to sign in.";
      }
      throw new ApiError(
        message,
        response.status,
        payload && payload.details,
        response.headers.get("Retry-After"),
      );
    }
    return payload.data !== undefined ? payload.data : payload;
  }

  function apiFailed(error, what) {
    let text = (what ? what + ": " : "") + error.message;
    if (error.status === 429 && error.retryAfter) {
      text += " Try again in " + error.retryAfter + " s.";
    }
    toast(text, "error");
    announce(text);
  }

  // --- WebSocket ----------------------------------------------------------------------------

  const CLOSE_UNAUTHORIZED = 4401;
  const CLOSE_TOO_MANY = 4429;

  /**
   * The event socket. Subscribes on every open, reconnects after a drop with
   * exponential backoff and jitter (1 s doubling to 30 s), and tells the page
   * when it came back so the page can re-read what it missed over REST.
   */
  class LiveSocket {
    constructor(options) {
      this.subscriptions = options.subscriptions;
      this.onFrame = options.onFrame;
      this.onReconnect = options.onReconnect || (() => {});
      this.status = document.getElementById("connection");
      this.attempts = 0;
      this.opened = false;
      this.live = false;
      this.stopped = false;
      this.timer = null;
      this.socket = null;
      const retry = this.status && this.status.querySelector(".conn-retry");
      if (retry) retry.addEventListener("click", () => this.connectNow());
      window.addEventListener("online", () => this.connectNow());
      document.addEventListener("visibilitychange", () => {
        if (document.visibilityState === "visible" && this.timer) this.connectNow();
      });
      window.addEventListener("pagehide", () => {
        this.stopped = true;
        if (this.socket) this.socket.close(1000);
      });
      window.addEventListener("pageshow", (event) => {
        // Back from the browser's page cache: pick up where the page left off.
        if (!event.persisted) return;
        this.stopped = false;
        this.opened = true;
        this.connectNow();
      });
    }

    url() {
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      return scheme + "//" + window.location.host + "/ws/agents/";
    }

    setState(state, text, canRetry) {
      if (!this.status) return;
      this.status.dataset.state = state;
      this.status.querySelector(".conn-text").textContent = text;
      this.status.querySelector(".conn-retry").hidden = !canRetry;
    }

    connect() {
      if (this.stopped) return;
      this.timer = null;
      this.setState("connecting", this.opened ? "Reconnecting…" : "Connecting…", false);
      let socket;
      try {
        socket = new WebSocket(this.url());
      } catch (error) {
        this.scheduleReconnect(null);
        return;
      }
      this.socket = socket;
      socket.addEventListener("open", () => {
        for (const frame of this.subscriptions) socket.send(JSON.stringify(frame));
      });
      socket.addEventListener("message", (message) => {
        let frame;
        try {
          frame = JSON.parse(message.data);
        } catch (error) {
          return;
        }
        if (frame.event === "subscribed") {
          this.subscribed();
          return;
        }
        if (frame.event === "error") {
          console.warn("NeonHub socket:", frame.data && frame.data.message);
          return;
        }
        this.onFrame(frame);
        // Other scripts of the page (alerts.js) listen here, not through the page's handler.
        document.dispatchEvent(new CustomEvent("neonhub:frame", { detail: frame }));
      });
      socket.addEventListener("close", (event) => {
        if (this.socket === socket) this.socket = null;
        if (this.live) announce("Live updates lost; reconnecting.");
        this.live = false;
        this.scheduleReconnect(event.code);
      });
    }

    subscribed() {
      // Live once the first room answers; the rest follow on the same socket.
      if (this.live) return;
      this.live = true;
      const again = this.opened;
      this.opened = true;
      this.attempts = 0;
      this.setState("open", "Live", false);
      if (again) {
        announce("Live updates are back.");
        this.onReconnect();
        document.dispatchEvent(new CustomEvent("neonhub:reconnect"));
      }
    }

    scheduleReconnect(code) {
      if (this.stopped) return;
      if (code === CLOSE_UNAUTHORIZED) {
        // Only signing in again helps; the link reloads the page, which asks for it.
        this.stopped = true;
        this.setState("unauthorized", "Signed out", false);
        const text = this.status && this.status.querySelector(".conn-text");
        if (text) fill(text, "Signed out · ", h("a", { href: window.location.href, text: "sign in" }));
        return;
      }
      this.attempts += 1;
      const base = Math.min(30000, 1000 * 2 ** (this.attempts - 1));
      // Many tabs dropped by one server restart must not come back in lockstep.
      let delay = base / 2 + Math.random() * (base / 2);
      if (code === CLOSE_TOO_MANY) delay = Math.max(delay, 15000);
      const until = Date.now() + delay;
      const why = code === CLOSE_TOO_MANY ? "Too many open tabs · " : "Offline · ";
      const tick = () => {
        const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
        this.setState("waiting", why + "retry in " + left + " s", true);
      };
      tick();
      window.clearInterval(this.countdown);
      this.countdown = window.setInterval(tick, 1000);
      window.clearTimeout(this.timer);
      this.timer = window.setTimeout(() => {
        window.clearInterval(this.countdown);
        this.connect();
      }, delay);
    }

    connectNow() {
      if (this.stopped || this.socket) return;
      window.clearTimeout(this.timer);
      window.clearInterval(this.countdown);
      this.connect();
    }
  }

  // --- runs in progress ---------------------------------------------------------------------

  /** Progress bars of the runs in progress, keyed by agent. */
  class RunBoard {
    constructor(list, empty, options) {
      this.list = list;
      this.empty = empty;
      this.linkFor = (options && options.linkFor) || null;
      this.lingerMs = (options && options.lingerMs) || 8000;
      this.items = new Map();
    }

    item(agentId, name) {
      let entry = this.items.get(agentId);
      if (!entry) {
        const label = name || "Agent";
        const fillBar = h("span", { class: "bar-fill" });
        const bar = h(
          "div",
          {
            class: "bar",
            role: "progressbar",
            "aria-valuemin": "0",
            "aria-valuemax": "100",
            "aria-valuenow": "0",
            "aria-label": "Progress of " + label,
            "data-progress-for": agentId,
          },
          fillBar,
        );
        const nameNode = this.linkFor
          ? h("a", { class: "run-name", href: this.linkFor(agentId), text: label })
          : h("span", { class: "run-name", text: label });
        const pct = h("span", { class: "run-pct" });
        const message = h("span", { class: "run-msg" });
        const meta = h("span", { class: "run-meta" });
        const node = h(
          "li",
          { class: "run", "data-agent-id": agentId },
          h("div", { class: "run-top" }, nameNode, pct),
          bar,
          h("div", { class: "run-foot" }, message, meta),
        );
        entry = { node, bar, fillBar, pct, message, meta, nameNode, timer: null, started: null };
        this.items.set(agentId, entry);
        this.list.prepend(node);
        this.sync();
      } else if (name && entry.nameNode.textContent !== name) {
        entry.nameNode.textContent = name;
        entry.bar.setAttribute("aria-label", "Progress of " + name);
      }
      window.clearTimeout(entry.timer);
      entry.node.classList.remove("leaving");
      return entry;
    }

    set(entry, phase, progress, pctText, message) {
      entry.node.dataset.phase = phase;
      entry.bar.dataset.phase = phase;
      entry.bar.setAttribute("aria-valuenow", String(progress));
      entry.bar.setAttribute("aria-valuetext", pctText);
      entry.fillBar.style.width = progress + "%";
      entry.pct.textContent = pctText;
      if (message !== undefined) entry.message.textContent = message;
    }

    queued(agentId, name) {
      const entry = this.item(agentId, name);
      if (entry.node.dataset.phase === "running") return;
      this.set(entry, "queued", 0, "Queued", "Waiting for a free slot");
      entry.meta.textContent = "";
    }

    started(agentId, name, detail) {
      const entry = this.item(agentId, name);
      entry.started = detail.startedAt || new Date().toISOString();
      this.set(entry, "running", detail.progress || 0, (detail.progress || 0) + "%", detail.message || "Starting…");
      fill(entry.meta, detail.attempt > 1 ? "attempt " + detail.attempt + " · " : "", "started ", timeAgo(entry.started));
    }

    progress(agentId, name, progress, message) {
      const entry = this.items.get(agentId) || this.item(agentId, name);
      if (entry.node.dataset.phase !== "running") {
        this.started(agentId, name, { progress, message });
        return;
      }
      this.set(entry, "running", progress, progress + "%", message || "");
    }

    finished(agentId, name, ok, text) {
      const entry = this.items.get(agentId) || this.item(agentId, name);
      if (ok) this.set(entry, "completed", 100, "100%", text);
      else this.set(entry, "failed", Number(entry.bar.getAttribute("aria-valuenow")) || 0, "Failed", text);
      fill(entry.meta, ok ? icon("check") : icon("x"));
      entry.timer = window.setTimeout(() => this.remove(agentId, true), ok ? this.lingerMs : this.lingerMs * 1.5);
    }

    remove(agentId, fade) {
      const entry = this.items.get(agentId);
      if (!entry) return;
      window.clearTimeout(entry.timer);
      const drop = () => {
        entry.node.remove();
        if (this.items.get(agentId) === entry) this.items.delete(agentId);
        this.sync();
      };
      if (fade) {
        entry.node.classList.add("leaving");
        entry.timer = window.setTimeout(drop, 600);
      } else drop();
    }

    has(agentId) {
      return this.items.has(agentId);
    }

    sync() {
      if (this.empty) this.empty.hidden = this.items.size > 0;
    }
  }

  // --- event feed ---------------------------------------------------------------------------

  class Feed {
    constructor(list, empty, options) {
      this.list = list;
      this.empty = empty;
      this.limit = (options && options.limit) || 80;
      this.keyed = new Map();
    }

    /** Adds an entry, or updates the one with the same key (a run's progress). */
    add(kind, time, content, detail, key) {
      const body = h("span", { class: "feed-text" }, content);
      if (detail) body.append(h("span", { class: "feed-detail", text: detail }));
      const stamp = toDate(time) || new Date();
      const item = h(
        "li",
        { class: "feed-item", dataset: { kind } },
        h("time", { datetime: stamp.toISOString(), title: fullDate(stamp), text: clock(stamp) }),
        h("span", { class: "feed-dot", "aria-hidden": "true" }),
        body,
      );
      // A run's progress is one entry that moves up as it changes, so the feed
      // stays in time order without a line per step.
      const previous = key ? this.keyed.get(key) : null;
      if (previous) previous.remove();
      if (previous) item.classList.add("updated");
      this.list.prepend(item);
      if (key) this.keyed.set(key, item);
      while (this.list.children.length > this.limit) this.list.lastElementChild.remove();
      this.sync();
      return item;
    }

    clear() {
      this.list.replaceChildren();
      this.keyed.clear();
      this.sync();
    }

    sync() {
      if (this.empty) this.empty.hidden = this.list.children.length > 0;
    }
  }

  // --- schedules and status figures ---------------------------------------------------------

  /** Reads a json_script block the server embedded. */
  function embedded(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  /** Marks a button as working. Not `disabled`: that would drop keyboard focus. */
  function busy(button, on) {
    button.classList.toggle("busy", on);
    if (on) {
      button.setAttribute("aria-busy", "true");
      button.setAttribute("aria-disabled", "true");
    } else {
      button.removeAttribute("aria-busy");
      button.removeAttribute("aria-disabled");
    }
  }

  function isBusy(button) {
    return button.getAttribute("aria-busy") === "true";
  }

  /** The button that pauses or resumes an agent's schedule. `compact` is for a table row:
   *  a small button whose label names the agent, since the row holds the only clue. */
  function scheduleToggle(agent, { compact = false } = {}) {
    const paused = !agent.scheduleEnabled;
    const verb = paused ? "Resume" : "Pause";
    return h(
      "button",
      {
        type: "button",
        class: compact ? "btn btn-sm btn-toggle" : "btn",
        "data-action": paused ? "resume" : "pause",
        "aria-label": verb + " the schedule" + (compact ? " of " + agent.name : ""),
      },
      icon(paused ? "resume" : "pause"),
      compact ? verb : verb + " schedule",
    );
  }

  // --- dialogs and forms --------------------------------------------------------------------

  let dialogCount = 0;

  /** A labelled form control with its hint and a slot for its error, tied by aria-describedby. */
  function field(name, label, control, hint) {
    const id = "f-" + ++dialogCount + "-" + name;
    control.id = id;
    control.name = name;
    const hintNode = hint ? h("p", { class: "field-hint", id: id + "-hint", text: hint }) : null;
    const error = h("p", { class: "field-error", id: id + "-error", hidden: true });
    control.dataset.hint = hintNode ? hintNode.id : "";
    if (hintNode) control.setAttribute("aria-describedby", hintNode.id);
    const wrap = h("div", { class: "field", "data-field": name }, h("label", { for: id, text: label }), control, hintNode, error);
    return { wrap, control, error };
  }

  function setFieldError(control, message) {
    const error = control.id && document.getElementById(control.id + "-error");
    if (!error) return;
    const ids = [control.dataset.hint, message ? error.id : ""].filter(Boolean);
    error.textContent = message || "";
    error.hidden = !message;
    if (message) control.setAttribute("aria-invalid", "true");
    else control.removeAttribute("aria-invalid");
    if (ids.length) control.setAttribute("aria-describedby", ids.join(" "));
    else control.removeAttribute("aria-describedby");
  }

  /** Puts the API's `details` next to the fields they name; answers whether any was placed. */
  function showFieldErrors(form, details) {
    let first = null;
    for (const control of form.querySelectorAll("[name]")) {
      const messages = details && details[control.name];
      setFieldError(control, messages ? [].concat(messages).join(" ") : "");
      if (messages && !first) first = control;
    }
    if (first) first.focus();
    return Boolean(first);
  }

  /**
   * A modal dialog holding a form. `submit(form)` does the work: what it returns
   * resolves the promise and closes the dialog; an ApiError it throws is shown
   * next to the fields it names, or above the buttons. Cancel and Escape resolve
   * with null. Focus goes into the dialog and back to where it was.
   */
  function openDialog({ title, intro, fields, submitLabel, submit, onOpen }) {
    const titleId = "dialog-title-" + ++dialogCount;
    const problem = h("p", { class: "form-error", role: "alert", hidden: true });
    const submitButton = h("button", { type: "submit", class: "btn btn-primary", text: submitLabel });
    const cancel = h("button", { type: "button", class: "btn btn-ghost", text: "Cancel" });
    const form = h(
      "form",
      { class: "dialog-form", novalidate: true },
      h("h2", { id: titleId, class: "dialog-title", text: title }),
      intro ? h("p", { class: "dialog-intro", text: intro }) : null,
      fields,
      problem,
      h("div", { class: "dialog-actions" }, cancel, submitButton),
    );
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": titleId }, form);
    const opener = document.activeElement;
    document.body.append(dialog);
    return new Promise((resolve) => {
      let result = null;
      dialog.addEventListener("close", () => {
        dialog.remove();
        if (opener && opener.isConnected) opener.focus();
        resolve(result);
      });
      cancel.addEventListener("click", () => dialog.close());
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        if (isBusy(submitButton)) return;
        busy(submitButton, true);
        problem.hidden = true;
        try {
          result = await submit(form);
          dialog.close();
        } catch (error) {
          if (!(error instanceof ApiError)) throw error;
          const placed = showFieldErrors(form, error.details);
          if (!placed) {
            problem.textContent = error.message;
            problem.hidden = false;
          }
          announce(error.message);
        } finally {
          busy(submitButton, false);
        }
      });
      dialog.showModal();
      const first = form.querySelector("input, select, textarea");
      (first || submitButton).focus();
      if (onOpen) onOpen(form);
    });
  }

  /** "2026-12-03T09:00" in the browser's zone, as a datetime-local input takes it. */
  function localInputValue(date) {
    const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
    return local.toISOString().slice(0, 16);
  }

  /** Asks for an optional note and end, then pauses; resolves with the schedule or null. */
  function pauseSchedule(agent) {
    const note = field("pauseNote", "Note (optional)", h("textarea", { rows: "2", maxlength: "500" }), "Why it is paused; shown on the agent's page.");
    const until = field(
      "pausedUntil",
      "Paused until (optional)",
      h("input", { type: "datetime-local", min: localInputValue(new Date()) }),
      "Your time" + (localZone() ? " (" + localZone() + ")" : "") + ". Empty: until resumed by hand.",
    );
    return openDialog({
      title: "Pause the schedule of " + agent.name,
      intro: "No slot runs while paused. With an end, the schedule resumes by itself then.",
      fields: [note.wrap, until.wrap],
      submitLabel: "Pause schedule",
      submit: () => {
        const body = { enabled: false, pauseNote: note.control.value.trim() };
        if (until.control.value) body.pausedUntil = new Date(until.control.value).toISOString();
        return api("PATCH", "/api/agents/" + agent.id + "/schedule", body);
      },
    });
  }

  const RESUME_POLICIES = [
    ["SKIP_MISSED", "Skip the missed slots", "Resume from the next slot on."],
    ["RUN_LATEST", "Run the most recent missed slot", "One run now, for the latest slot missed while paused."],
    ["RUN_ALL", "Run every missed slot", "Oldest first, the most recent 100 at most."],
  ];

  /** Offers the resume policies with a dry run of each; resolves with the schedule or null. */
  function resumeSchedule(agent) {
    const base = "/api/agents/" + agent.id + "/schedule";
    const preview = h("div", { class: "resume-preview", "aria-live": "polite" });
    const choices = RESUME_POLICIES.map(([value, label, hint], index) => {
      const id = "resume-" + ++dialogCount;
      return h(
        "div",
        { class: "choice" },
        h("input", { type: "radio", name: "policy", id, value, checked: index === 0, "aria-describedby": id + "-hint" }),
        h("label", { for: id, text: label }),
        h("p", { class: "field-hint", id: id + "-hint", text: hint }),
      );
    });
    const group = h("fieldset", { class: "choices" }, h("legend", { text: "Slots missed while paused" }), choices);
    let asked = 0;
    const chosen = (form) => form.querySelector("input[name=policy]:checked").value;
    async function dryRun(form) {
      const ask = ++asked;
      fill(preview, h("p", { class: "muted", text: "Looking up the missed slots…" }));
      try {
        const data = await api("POST", base + "/resume", { policy: chosen(form), dryRun: true });
        if (ask !== asked) return;
        fill(
          preview,
          h("p", { class: "resume-count", text: data.runs.length ? "Would run " + data.runs.length + (data.runs.length === 1 ? " slot:" : " slots:") : "Would run no missed slot." }),
          data.runs.length
            ? h("ol", { class: "resume-runs", "aria-label": "Slots that would run" }, data.runs.map((run) => h("li", {}, h("time", { datetime: run, title: fullDate(run), text: dateTime(run) }))))
            : null,
        );
      } catch (error) {
        if (ask === asked) fill(preview, h("p", { class: "field-error", text: error.message }));
      }
    }
    return openDialog({
      title: "Resume the schedule of " + agent.name,
      intro: agent.pauseNote ? "Paused: " + agent.pauseNote : null,
      fields: [group, preview],
      submitLabel: "Resume schedule",
      onOpen(form) {
        group.addEventListener("change", () => dryRun(form));
        dryRun(form);
      },
      async submit(form) {
        const data = await api("POST", base + "/resume", { policy: chosen(form), dryRun: false });
        const detail = await api("GET", base);
        detail.queuedRuns = data.runs;
        return detail;
      },
    });
  }

  // --- SVG charts -----------------------------------------------------------------------------
  // Small hand-drawn SVG rather than a charting library: the pages need a few bars and
  // lines, and this stays a few dozen lines with no build step and nothing to load.

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    for (const child of children) if (child) node.append(child);
    return node;
  }

  /** A window's buckets (GET /api/agents/.../stats) as tiny bars: height the runs, red the
   * failed share; an hour or day without runs is a dot on the baseline. */
  function sparkline(buckets, label) {
    const width = 96;
    const height = 22;
    const top = Math.max(1, ...buckets.map((b) => b.runs));
    const slot = width / Math.max(1, buckets.length);
    const root = svg("svg", { class: "spark", viewBox: "0 0 " + width + " " + height, width, height, role: "img" });
    root.append(svg("title", {}, document.createTextNode(label)));
    buckets.forEach((bucket, index) => {
      const x = index * slot + slot * 0.15;
      const barW = Math.max(1, slot * 0.7);
      const barH = bucket.runs ? Math.max(2, ((height - 1) * bucket.runs) / top) : 1;
      const failedH = bucket.runs ? (barH * bucket.failed) / bucket.runs : 0;
      root.append(svg("rect", { class: "s-ok", x, y: height - barH, width: barW, height: barH - failedH }));
      if (failedH) root.append(svg("rect", { class: "s-bad", x, y: height - failedH, width: barW, height: failedH }));
    });
    return root;
  }

  window.setInterval(() => refreshRelativeTimes(), 10000);

  Object.assign(NH, {
    h,
    fill,
    icon,
    clock,
    dateTime,
    soon,
    fullDate,
    localZone,
    relative,
    duration,
    titleCase,
    timeAgo,
    refreshRelativeTimes,
    announce,
    toast,
    api,
    apiFailed,
    ApiError,
    LiveSocket,
    RunBoard,
    Feed,
    embedded,
    busy,
    isBusy,
    scheduleToggle,
    toDate,
    field,
    setFieldError,
    showFieldErrors,
    openDialog,
    pauseSchedule,
    resumeSchedule,
    svg,
    sparkline,
  });
})();
