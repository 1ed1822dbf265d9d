/* One agent: its schedule (and its editor) and next runs, its current run, the
 * strip of its latest slots, the live log of its current (or last) run, a chart of recent
 * runs, the paginated history and the latest changes. Rendered from the embedded state, kept current by
 * the agent's WebSocket room, re-read over REST after a dropped socket.
 */
(function () {
  "use strict";

  const NH = window.NeonHub;
  const { h, fill, icon, api } = NH;

  const initial = NH.embedded("agent-state");
  if (!initial) return;

  let agent = initial.agent;
  let schedule = initial.schedule;
  let recent = initial.sessions; // newest first, for the chart
  let page = { sessions: recent.slice(0, initial.pageSize), total: initial.sessionsTotal, offset: 0 };
  const pageSize = initial.pageSize;
  const chartRuns = 30;
  const base = "/api/agents/" + agent.id;
  let reloadTimer = null;
  let lastDueRefresh = 0;
  let slots = []; // newest first, as the API answers
  let slotsTimer = null;
  let changesTimer = null;
  const changesShown = 20;
  const statusInterval = (initial.statusInterval || 10) * 1000;

  const board = new NH.RunBoard(document.getElementById("running-list"), document.getElementById("running-empty"), {
    lingerMs: 10000,
  });
  const feed = new NH.Feed(document.getElementById("feed"), null, { limit: 12 });

  // --- header and actions -------------------------------------------------------------------

  function renderHeader() {
    const status = document.getElementById("agent-status");
    status.dataset.status = agent.status;
    status.textContent = NH.titleCase(agent.status);
    document.getElementById("agent-priority").textContent = NH.titleCase(agent.priority) + " priority";
    const actions = document.getElementById("agent-actions");
    const keep = actions.querySelector("a");
    const focused = document.activeElement && actions.contains(document.activeElement) ? document.activeElement.dataset.action : null;
    if (actions.querySelector("[aria-busy]")) return;
    const buttons = [
      h("button", { type: "button", class: "btn btn-primary", "data-action": "run" }, icon("play"), "Run now"),
    ];
    if (agent.scheduleExpression) buttons.push(NH.scheduleToggle(agent));
    fill(actions, buttons, keep);
    if (focused) {
      const again = actions.querySelector('[data-action="' + focused + '"]') || actions.querySelector("[data-action]:not([data-action=run])");
      if (again) again.focus();
    }
  }

  document.getElementById("agent-actions").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || NH.isBusy(button)) return;
    if (button.dataset.action === "run") runNow(button);
    else changeSchedule(button.dataset.action === "resume", button);
  });

  async function runNow(button) {
    NH.busy(button, true);
    try {
      await api("POST", base + "/run");
      if (agent.status !== "RUNNING") {
        agent.status = "QUEUED";
        board.queued(agent.id, "Queued run");
      }
      feed.add("queued", new Date(), "Queued to run now");
      NH.announce("Run queued.");
    } catch (error) {
      NH.apiFailed(error, "Could not run the agent");
    } finally {
      NH.busy(button, false);
      renderHeader();
    }
  }

  /** Pausing asks for a note and an end, resuming for what to do with the missed slots. */
  async function changeSchedule(resume, button) {
    NH.busy(button, true);
    try {
      const data = await (resume ? NH.resumeSchedule(Object.assign({}, agent, schedule)) : NH.pauseSchedule(agent));
      if (!data) return;
      // A pause answers with the summary, which has no upcoming runs; the full schedule does.
      applySchedule(resume ? data : await api("GET", base + "/schedule"));
      const text = resume ? "Schedule resumed." : "Schedule paused.";
      const queued = resume && data.queuedRuns.length;
      NH.toast(text + (queued ? " Queued " + queued + (queued === 1 ? " missed slot." : " missed slots.") : ""), "ok");
      NH.announce(text);
      if (queued) reloadSlotsSoon();
      reloadChangesSoon();
    } catch (error) {
      NH.apiFailed(error, "Could not " + (resume ? "resume" : "pause") + " the schedule");
    } finally {
      NH.busy(button, false);
      renderHeader();
      renderSchedule();
    }
  }

  // --- schedule -----------------------------------------------------------------------------

  function applySchedule(detail) {
    Object.assign(agent, {
      scheduleExpression: detail.scheduleExpression,
      scheduleEnabled: detail.scheduleEnabled,
      scheduleTimezone: detail.scheduleTimezone,
      priority: detail.priority,
      nextRunAt: detail.nextRunAt,
      lastRunAt: detail.lastRunAt,
      status: detail.status,
    });
    schedule = {
      description: detail.description,
      upcomingRuns: detail.upcomingRuns || [],
      warnings: detail.warnings || [],
      overlapPolicy: detail.overlapPolicy,
      catchupPolicy: detail.catchupPolicy,
      catchupWindow: detail.catchupWindow,
      jitterSeconds: detail.jitterSeconds,
      pauseNote: detail.pauseNote,
      pausedUntil: detail.pausedUntil,
    };
  }

  const OVERLAP_POLICIES = [
    ["SKIP", "Skip the new slot"],
    ["BUFFER_ONE", "Keep at most one slot waiting"],
    ["BUFFER_ALL", "Queue every slot"],
    ["CANCEL_OTHER", "Cancel the previous run"],
  ];
  const CATCHUP_POLICIES = [
    ["LATEST", "Only the most recent"],
    ["ALL", "All of them, oldest first"],
    ["NONE", "None"],
  ];
  const PRIORITIES = ["LOW", "NORMAL", "HIGH", "CRITICAL"].map((value) => [value, NH.titleCase(value)]);

  function labelOf(choices, value) {
    const found = choices.find(([code]) => code === value);
    return found ? found[1] : value || "—";
  }

  function renderPolicies(facts) {
    fill(facts.querySelector('[data-field="overlap"]'), labelOf(OVERLAP_POLICIES, schedule.overlapPolicy), " ", h("code", { text: schedule.overlapPolicy }));
    const catchupWindow = schedule.catchupWindow === null || schedule.catchupWindow === undefined
      ? "the server's window"
      : schedule.catchupWindow + " s window";
    fill(facts.querySelector('[data-field="catchup"]'), labelOf(CATCHUP_POLICIES, schedule.catchupPolicy), " ", h("span", { class: "muted", text: "(" + catchupWindow + ")" }));
    facts.querySelector('[data-field="jitter"]').textContent = schedule.jitterSeconds ? "up to " + schedule.jitterSeconds + " s" : "None";
  }

  function renderPause() {
    const box = document.getElementById("schedule-pause");
    box.hidden = !(agent.scheduleExpression && !agent.scheduleEnabled);
    if (box.hidden) return;
    box.querySelector('[data-field="note"]').textContent = schedule.pauseNote || "Paused, no note.";
    const until = box.querySelector('[data-field="until"]');
    if (schedule.pausedUntil) fill(until, "Resumes by itself on ", h("time", { datetime: schedule.pausedUntil, title: NH.fullDate(schedule.pausedUntil), text: NH.dateTime(schedule.pausedUntil) }), " (", NH.timeAgo(schedule.pausedUntil), ")");
    else until.textContent = "Until resumed by hand.";
  }

  function renderSchedule() {
    const state = document.getElementById("schedule-state");
    if (!agent.scheduleExpression) {
      state.textContent = "";
    } else {
      state.dataset.status = agent.scheduleEnabled ? "ACTIVE" : "PAUSED";
      state.textContent = agent.scheduleEnabled ? "Active" : "Paused";
    }
    document.getElementById("schedule-desc").textContent = agent.scheduleExpression
      ? schedule.description || agent.scheduleExpression
      : "Not scheduled";
    const facts = document.getElementById("schedule-facts");
    facts.querySelector('[data-field="expression"]').textContent = agent.scheduleExpression || "—";
    facts.querySelector('[data-field="timezone"]').textContent = agent.scheduleTimezone || "UTC";
    const next = facts.querySelector('[data-field="next"]');
    if (agent.nextRunAt) fill(next, NH.dateTime(agent.nextRunAt), " ", h("span", { class: "muted" }, "(", NH.timeAgo(agent.nextRunAt), ")"));
    else fill(next, h("span", { class: "muted", text: agent.scheduleExpression ? "None while paused" : "—" }));
    const last = facts.querySelector('[data-field="last"]');
    if (agent.lastRunAt) fill(last, NH.dateTime(agent.lastRunAt), " ", h("span", { class: "muted" }, "(", NH.timeAgo(agent.lastRunAt), ")"));
    else fill(last, h("span", { class: "muted", text: "Never" }));
    facts.querySelector('[data-field="retries"]').textContent = agent.retryCount
      ? agent.retryCount + (agent.lastError ? " · " + agent.lastError : "")
      : "0";
    renderPolicies(facts);
    renderPause();
    document.getElementById("schedule-edit").textContent = agent.scheduleExpression ? "Edit schedule" : "Set a schedule";
    const warnings = document.getElementById("schedule-warnings");
    fill(warnings, (schedule.warnings || []).map((warning) => h("li", { text: warning })));
    warnings.hidden = !(schedule.warnings || []).length;

    const list = document.getElementById("upcoming");
    fill(
      list,
      schedule.upcomingRuns.map((run) =>
        h("li", {}, h("time", { datetime: run, title: NH.fullDate(run), text: NH.dateTime(run) }), NH.timeAgo(run, "rel")),
      ),
    );
    const zone = NH.localZone();
    document.getElementById("upcoming-zone").textContent =
      schedule.upcomingRuns.length && zone ? "Your time (" + zone + ")" : "";
    const empty = document.getElementById("upcoming-empty");
    empty.hidden = schedule.upcomingRuns.length > 0;
    empty.textContent = agent.scheduleExpression
      ? "Paused: no runs ahead until the schedule is resumed."
      : "No schedule: this agent runs only when started by hand or by the API.";
  }

  // --- schedule editor ----------------------------------------------------------------------

  function choiceSelect(choices, value) {
    return h("select", {}, choices.map(([code, label]) => h("option", { value: code, selected: code === value, text: label })));
  }

  /** A whole number as typed, else the text itself, so the API names what is wrong with it. */
  function wholeNumber(text) {
    const value = text.trim();
    return /^\d+$/.test(value) ? Number(value) : value;
  }

  const zoneNames = (() => {
    try {
      return ["UTC", ...Intl.supportedValuesOf("timeZone").filter((zone) => zone !== "UTC")];
    } catch (error) {
      return ["UTC"];
    }
  })();

  function editSchedule() {
    const cron = NH.field("cronExpression", "Cron expression", h("input", { type: "text", autocomplete: "off", spellcheck: "false", value: agent.scheduleExpression || "" }), "Five fields (minute hour day-of-month month day-of-week) or a macro such as @daily.");
    const zoneList = h("datalist", { id: "zone-names" }, zoneNames.map((zone) => h("option", { value: zone })));
    const zone = NH.field("timezone", "Timezone", h("input", { type: "text", autocomplete: "off", list: "zone-names", value: agent.scheduleTimezone || "UTC" }), "The IANA zone the expression is read in.");
    const priority = NH.field("priority", "Priority", choiceSelect(PRIORITIES, agent.priority));
    const overlap = NH.field("overlapPolicy", "Overlap policy", choiceSelect(OVERLAP_POLICIES, schedule.overlapPolicy || "BUFFER_ONE"), "What a slot does while the previous run is still queued or running.");
    const catchup = NH.field("catchupPolicy", "Catch-up policy", choiceSelect(CATCHUP_POLICIES, schedule.catchupPolicy || "LATEST"), "Which slots missed while no beat ran still run.");
    const windowField = NH.field("catchupWindow", "Catch-up window (seconds)", h("input", { type: "text", inputmode: "numeric", value: schedule.catchupWindow === null || schedule.catchupWindow === undefined ? "" : String(schedule.catchupWindow) }), "How late a missed slot may be and still run. Empty: the server's default.");
    const jitter = NH.field("jitterSeconds", "Jitter (seconds)", h("input", { type: "text", inputmode: "numeric", value: String(schedule.jitterSeconds || 0) }), "Each run waits a delay below this, so many schedules do not start at once.");
    const preview = h("div", { class: "cron-preview", id: "cron-preview", "aria-live": "polite", "aria-label": "Preview" });
    let asked = 0;
    let timer = null;

    async function showPreview() {
      const expression = cron.control.value.trim();
      const ask = ++asked;
      if (!expression) {
        NH.setFieldError(cron.control, "");
        fill(preview, h("p", { class: "muted", text: "Type a cron expression to see its next runs." }));
        return;
      }
      const query = "?cronExpression=" + encodeURIComponent(expression) + "&timezone=" + encodeURIComponent(zone.control.value.trim() || "UTC");
      try {
        const data = await api("GET", "/api/schedule/preview" + query);
        if (ask !== asked) return;
        NH.setFieldError(cron.control, "");
        NH.setFieldError(zone.control, "");
        fill(
          preview,
          h("p", { class: "preview-desc", text: data.description }),
          h("ol", { class: "preview-runs", "aria-label": "Next runs, your time" }, data.upcomingRuns.map((run) => h("li", {}, h("time", { datetime: run, title: NH.fullDate(run), text: NH.dateTime(run) })))),
          data.warnings.length ? h("ul", { class: "dst-warnings", "aria-label": "Daylight saving time warnings" }, data.warnings.map((warning) => h("li", { text: warning }))) : null,
        );
      } catch (error) {
        if (ask !== asked) return;
        const details = error.details || {};
        NH.setFieldError(cron.control, details.cronExpression ? [].concat(details.cronExpression).join(" ") : "");
        NH.setFieldError(zone.control, details.timezone ? [].concat(details.timezone).join(" ") : "");
        fill(preview, h("p", { class: "muted", text: details.cronExpression || details.timezone ? "No preview: see the error above." : error.message }));
      }
    }

    function previewSoon() {
      window.clearTimeout(timer);
      timer = window.setTimeout(showPreview, 300);
    }

    return NH.openDialog({
      title: agent.scheduleExpression ? "Edit the schedule" : "Set a schedule",
      fields: [
        h("div", { class: "field-row" }, cron.wrap, zone.wrap, zoneList),
        preview,
        h("div", { class: "field-row" }, priority.wrap, overlap.wrap),
        h("div", { class: "field-row" }, catchup.wrap, windowField.wrap, jitter.wrap),
      ],
      submitLabel: "Save schedule",
      onOpen() {
        cron.control.addEventListener("input", previewSoon);
        zone.control.addEventListener("input", previewSoon);
        showPreview();
      },
      async submit() {
        window.clearTimeout(timer);
        const windowText = windowField.control.value.trim();
        const body = {
          cronExpression: cron.control.value.trim(),
          timezone: zone.control.value.trim(),
          priority: priority.control.value,
          overlapPolicy: overlap.control.value,
          catchupPolicy: catchup.control.value,
          catchupWindow: windowText ? wholeNumber(windowText) : null,
          jitterSeconds: wholeNumber(jitter.control.value || "0"),
        };
        await api(agent.scheduleExpression ? "PATCH" : "POST", base + "/schedule", body);
        return api("GET", base + "/schedule");
      },
    }).then((detail) => {
      if (!detail) return;
      applySchedule(detail);
      renderHeader();
      renderSchedule();
      reloadChangesSoon();
      NH.toast("Schedule saved.", "ok");
      NH.announce("Schedule saved: " + (detail.description || detail.scheduleExpression) + ".");
    });
  }

  document.getElementById("schedule-edit").addEventListener("click", editSchedule);

  // --- slots --------------------------------------------------------------------------------

  const OUTCOMES = {
    QUEUED: "Queued",
    RAN: "Ran",
    SKIPPED: "Skipped",
    CANCELLED: "Cancelled",
    MISSED: "Missed",
    BACKFILL: "Backfill",
  };

  function slotText(slot) {
    return NH.dateTime(slot.scheduledFor) + ": " + (OUTCOMES[slot.outcome] || slot.outcome) + ". " + slot.reason;
  }

  function showSlot(slot) {
    fill(
      document.getElementById("slot-detail"),
      h("time", { datetime: slot.scheduledFor, title: NH.fullDate(slot.scheduledFor), text: NH.dateTime(slot.scheduledFor) }),
      " · ",
      h("strong", { text: OUTCOMES[slot.outcome] || slot.outcome }),
      " · ",
      slot.reason,
    );
  }

  function renderSlots() {
    const strip = document.getElementById("slots");
    const focused = strip.contains(document.activeElement) ? document.activeElement.dataset.slot : null;
    const current = strip.querySelector('[tabindex="0"]');
    const keep = focused || (current && current.dataset.slot);
    const shown = slots.slice().reverse(); // oldest on the left
    fill(
      strip,
      shown.map((slot) =>
        h(
          "li",
          {},
          h("button", {
            type: "button",
            class: "slot",
            tabindex: "-1",
            "data-outcome": slot.outcome,
            "data-slot": slot.scheduledFor,
            "aria-label": slotText(slot),
            title: slotText(slot),
          }),
        ),
      ),
    );
    const buttons = [...strip.querySelectorAll(".slot")];
    const again = buttons.find((button) => button.dataset.slot === keep) || buttons[buttons.length - 1];
    if (again) again.tabIndex = 0;
    if (focused && again) again.focus();
    document.getElementById("slots-empty").hidden = shown.length > 0;
    if (!shown.length) fill(document.getElementById("slot-detail"));
  }

  function slotOf(button) {
    return slots.find((slot) => slot.scheduledFor === button.dataset.slot);
  }

  const strip = document.getElementById("slots");
  strip.addEventListener("focusin", (event) => {
    const button = event.target.closest(".slot");
    if (!button) return;
    for (const other of strip.querySelectorAll('.slot[tabindex="0"]')) other.tabIndex = -1;
    button.tabIndex = 0;
    const slot = slotOf(button);
    if (slot) showSlot(slot);
  });
  strip.addEventListener("mouseover", (event) => {
    const button = event.target.closest(".slot");
    const slot = button && slotOf(button);
    if (slot) showSlot(slot);
  });
  strip.addEventListener("keydown", (event) => {
    const buttons = [...strip.querySelectorAll(".slot")];
    const index = buttons.indexOf(document.activeElement);
    if (index < 0) return;
    const moves = { ArrowLeft: index - 1, ArrowUp: index - 1, ArrowRight: index + 1, ArrowDown: index + 1, Home: 0, End: buttons.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const next = buttons[Math.max(0, Math.min(buttons.length - 1, moves[event.key]))];
    next.focus();
  });

  async function reloadSlots() {
    const data = await api("GET", base + "/slots?limit=" + (initial.slotsShown || 48));
    slots = data.slots;
    renderSlots();
  }

  function reloadSlotsSoon() {
    window.clearTimeout(slotsTimer);
    slotsTimer = window.setTimeout(() => reloadSlots().catch(() => {}), 400);
  }

  window.setInterval(() => {
    if (document.visibilityState !== "visible") return;
    reloadSlots().catch(() => {});
    // Changes made elsewhere (the admin, another tab) show up without a reload.
    reloadChanges().catch(() => {});
  }, statusInterval);

  // --- changes ------------------------------------------------------------------------------

  const ACTIONS = {
    "agent.created": "Created the agent",
    "agent.updated": "Changed the agent",
    "agent.deleted": "Deleted the agent",
    "schedule.set": "Set the schedule",
    "schedule.changed": "Changed the schedule",
    "schedule.paused": "Paused the schedule",
    "schedule.resumed": "Resumed the schedule",
    "schedule.snooze_ended": "Resumed the schedule: its snooze ended",
    "schedule.removed": "Removed the schedule",
    backfill: "Backfilled",
  };
  const SOURCES = { API: "API", ADMIN: "admin", BEAT_ADMIN: "beat admin", SYSTEM: "system" };

  function changeValue(value) {
    if (value === null || value === undefined || value === "") return h("em", { text: "none" });
    return h("code", { text: typeof value === "string" ? value : JSON.stringify(value) });
  }

  function changeItem(entry) {
    const who = entry.source === "SYSTEM" ? "The system" : entry.actor + " (" + (SOURCES[entry.source] || entry.source) + ")";
    const fields = Object.entries(entry.changes);
    return h(
      "li",
      { class: "change" },
      h(
        "p",
        { class: "change-head" },
        h("time", { datetime: entry.at, title: NH.fullDate(entry.at), text: NH.dateTime(entry.at) }),
        " · ",
        h("strong", { text: who }),
        " · ",
        ACTIONS[entry.action] || entry.action,
      ),
      fields.length
        ? h(
            "ul",
            { class: "change-fields", "aria-label": "Fields changed" },
            fields.map(([name, [before, after]]) => h("li", {}, h("span", { class: "change-field", text: name + ": " }), changeValue(before), " → ", changeValue(after))),
          )
        : null,
    );
  }

  async function reloadChanges() {
    const data = await api("GET", base + "/audit?limit=" + changesShown);
    fill(document.getElementById("changes"), data.entries.map(changeItem));
    document.getElementById("changes-empty").hidden = data.entries.length > 0;
  }

  function reloadChangesSoon() {
    window.clearTimeout(changesTimer);
    changesTimer = window.setTimeout(() => reloadChanges().catch(() => {}), 300);
  }

  // --- chart --------------------------------------------------------------------------------

  const svg = NH.svg;

  function niceCeiling(value) {
    if (value <= 0) return 1000;
    const magnitude = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
    return 10 * magnitude;
  }

  function outcome(session) {
    if (session.status === "SUCCEEDED") return ["b-ok", "Succeeded"];
    if (session.status === "FAILED") return ["b-bad", "Failed"];
    if (session.status === "RUNNING" || session.status === "QUEUED") return ["b-live", NH.titleCase(session.status)];
    return ["b-other", NH.titleCase(session.status)];
  }

  function median(values) {
    if (!values.length) return null;
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }

  function renderChart() {
    const figure = document.getElementById("chart");
    const caption = document.getElementById("chart-caption");
    const runs = recent.slice(0, chartRuns).reverse(); // oldest on the left
    figure.querySelectorAll("svg, .chart-empty").forEach((node) => node.remove());
    const stats = document.getElementById("chart-stats");
    if (!runs.length) {
      figure.append(h("div", { class: "chart-empty", text: "No runs yet." }));
      fill(stats);
      return;
    }
    const durations = runs.map((s) => s.duration).filter((d) => d !== null && d !== undefined);
    const top = niceCeiling(Math.max(...durations, 0));
    // Drawn at the figure's real size so text and bars are never stretched.
    const width = Math.max(320, Math.round(figure.clientWidth || 720));
    const height = 180;
    const left = 52;
    const bottom = 22;
    const plotH = height - bottom - 8;
    const slot = (width - left) / chartRuns;
    const barW = Math.max(4, slot * 0.62);
    const root = svg("svg", {
      viewBox: "0 0 " + width + " " + height,
      width,
      height,
      role: "img",
      "aria-labelledby": "chart-caption",
    });
    for (const fraction of [0, 0.5, 1]) {
      const y = 8 + plotH * (1 - fraction);
      root.append(svg("line", { class: "grid", x1: left, x2: width, y1: y, y2: y }));
      const label = svg("text", { class: "axis", x: left - 8, y: y + 3.5, "text-anchor": "end" });
      label.textContent = NH.duration(top * fraction);
      root.append(label);
    }
    // Newest runs sit at the right edge, so a fresh run is always in the same place.
    const offset = chartRuns - runs.length;
    runs.forEach((session, index) => {
      const [cls, label] = outcome(session);
      const value = session.duration;
      const barH = value ? Math.max(3, (plotH * value) / top) : 3;
      const x = left + (offset + index) * slot + (slot - barW) / 2;
      const rect = svg("rect", { class: cls, x, y: 8 + plotH - barH, width: barW, height: barH, rx: 2 });
      const title = svg("title");
      const when = session.startedAt || session.scheduledFor || session.createdAt;
      title.textContent = NH.dateTime(when) + " · " + label + (value != null ? " · " + NH.duration(value) : "");
      rect.append(title);
      root.append(rect);
    });
    const first = svg("text", { class: "axis", x: left, y: height - 5 });
    first.textContent = runs.length > 1 ? "older" : "";
    const last = svg("text", { class: "axis", x: width, y: height - 5, "text-anchor": "end" });
    last.textContent = "latest";
    root.append(first, last);
    figure.append(root);

    const finished = runs.filter((s) => s.status === "SUCCEEDED" || s.status === "FAILED");
    const ok = finished.filter((s) => s.status === "SUCCEEDED").length;
    const med = median(finished.map((s) => s.duration).filter((d) => d != null));
    const rate = finished.length ? Math.round((100 * ok) / finished.length) + "%" : "—";
    caption.textContent =
      "Bar chart of the latest " + runs.length + " runs, oldest first: " + ok + " succeeded, " +
      (finished.length - ok) + " failed" + (med != null ? ", median duration " + NH.duration(med) : "") + ".";
    const lastFailure = runs.slice().reverse().find((s) => s.status === "FAILED");
    fill(
      stats,
      h("div", {}, h("dt", { text: "Success rate" }), h("dd", { text: rate })),
      h("div", {}, h("dt", { text: "Median duration" }), h("dd", { text: med != null ? NH.duration(med) : "—" })),
      h(
        "div",
        {},
        h("dt", { text: "Last failure" }),
        h("dd", {}, lastFailure ? NH.timeAgo(lastFailure.completedAt || lastFailure.startedAt) : "None"),
      ),
    );
  }

  // --- history ------------------------------------------------------------------------------

  function historyRow(session) {
    const when = session.startedAt || session.scheduledFor;
    const text = session.errorMessage || session.outputSummary || "";
    return h(
      "tr",
      { "data-status": session.status },
      h("td", {}, when ? h("time", { datetime: when, title: NH.fullDate(when), text: NH.dateTime(when) }) : "—"),
      h(
        "td",
        {},
        h("span", { class: "pill", dataset: { status: session.status } }, NH.titleCase(session.status)),
        session.status === "RUNNING" ? " " + (session.progress || 0) + "%" : "",
      ),
      h("td", { text: session.trigger ? NH.titleCase(session.trigger) : "—" }),
      h("td", { class: "num", text: session.attempt }),
      h("td", { class: "num", text: session.duration != null ? NH.duration(session.duration) : "—" }),
      h("td", { class: "c-output", title: text, text }),
    );
  }

  function renderHistory() {
    const tbody = document.querySelector("#history tbody");
    fill(tbody, page.sessions.map(historyRow));
    document.getElementById("history-empty").hidden = page.sessions.length > 0;
    const from = page.total ? page.offset + 1 : 0;
    const to = page.offset + page.sessions.length;
    const info = page.total ? "Runs " + from + "–" + to + " of " + page.total : "";
    document.getElementById("page-info").textContent = info;
    document.getElementById("history-range").textContent = page.total ? page.total + " runs in all" : "";
    document.getElementById("page-prev").disabled = page.offset === 0;
    document.getElementById("page-next").disabled = to >= page.total;
  }

  async function loadPage(offset) {
    const data = await api("GET", base + "/sessions?limit=" + pageSize + "&offset=" + offset);
    page = { sessions: data.sessions, total: data.pagination.total, offset };
    renderHistory();
  }

  document.getElementById("page-prev").addEventListener("click", () =>
    loadPage(Math.max(0, page.offset - pageSize)).catch((e) => NH.apiFailed(e, "Could not load runs")),
  );
  document.getElementById("page-next").addEventListener("click", () =>
    loadPage(page.offset + pageSize).catch((e) => NH.apiFailed(e, "Could not load runs")),
  );

  /** Re-reads the latest runs: one request feeds the chart and, on the first page, the table. */
  async function reloadRuns() {
    const data = await api("GET", base + "/sessions?limit=" + chartRuns);
    recent = data.sessions;
    if (page.offset === 0) page = { sessions: recent.slice(0, pageSize), total: data.pagination.total, offset: 0 };
    else page.total = data.pagination.total;
    renderChart();
    renderHistory();
    reloadStatsLater();
    return recent;
  }

  function reloadRunsSoon() {
    window.clearTimeout(reloadTimer);
    reloadTimer = window.setTimeout(() => reloadRuns().catch((e) => NH.apiFailed(e, "Could not load runs")), 400);
  }

  // --- events -------------------------------------------------------------------------------

  function upsertRecent(session) {
    const index = recent.findIndex((s) => s.id === session.id);
    if (index >= 0) recent[index] = Object.assign({}, recent[index], session);
    else recent.unshift(session);
    if (page.offset === 0) {
      const onPage = page.sessions.findIndex((s) => s.id === session.id);
      if (onPage >= 0) page.sessions[onPage] = Object.assign({}, page.sessions[onPage], session);
      else {
        page.sessions = [session, ...page.sessions].slice(0, pageSize);
        page.total += 1;
      }
    }
  }

  // --- run log ------------------------------------------------------------------------------

  const MAX_LOG_LINES = 1000;
  const logList = document.getElementById("run-log");
  let log = { sessionId: null, lastSeq: 0, attempt: null, truncated: false, reading: null, again: false };

  function timeOfDay(iso) {
    return NH.toDate(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function logLine(line) {
    const level = line.level || "INFO";
    return h(
      "li",
      { class: "log-line", dataset: { level: level.toLowerCase() } },
      h("time", { datetime: line.at || "", title: line.at ? NH.fullDate(line.at) : "", text: line.at ? timeOfDay(line.at) : "" }),
      h("span", { class: "log-level", text: level }),
      h("span", { class: "log-message", text: line.message }),
    );
  }

  function renderLogState() {
    document.getElementById("log-empty").hidden = logList.children.length > 0;
    document.getElementById("log-truncated").hidden = !log.truncated;
    document.getElementById("log-note").textContent = log.sessionId
      ? (log.attempt ? "Attempt " + log.attempt + ", " : "") + logList.children.length + (logList.children.length === 1 ? " line" : " lines")
      : "";
  }

  function appendLines(lines) {
    const stickToEnd = logList.scrollTop + logList.clientHeight >= logList.scrollHeight - 8;
    for (const line of lines) {
      if (line.seq <= log.lastSeq) continue;
      logList.appendChild(logLine(line));
      log.lastSeq = line.seq;
    }
    while (logList.children.length > MAX_LOG_LINES) logList.firstChild.remove();
    if (stickToEnd) logList.scrollTop = logList.scrollHeight;
    renderLogState();
  }

  function showLogOf(sessionId, attempt) {
    if (log.sessionId === sessionId) return;
    log = { sessionId, lastSeq: 0, attempt: attempt || null, truncated: false, reading: null, again: false };
    logList.replaceChildren();
    renderLogState();
    readLog();
  }

  // Reads what is missing after lastSeq over REST: on opening a run's log,
  // after a gap in the live frames, and when the run ends. One read at a time;
  // a request for another while one is under way reads again after it.
  function readLog() {
    const sessionId = log.sessionId;
    if (!sessionId) return Promise.resolve();
    if (log.reading) {
      log.again = true;
      return log.reading;
    }
    log.reading = (async () => {
      try {
        for (;;) {
          const data = await api("GET", "/api/sessions/" + sessionId + "/logs?after=" + log.lastSeq + "&limit=" + MAX_LOG_LINES);
          if (log.sessionId !== sessionId) return;
          log.truncated = data.truncated;
          appendLines(data.lines);
          if (data.lines.length < MAX_LOG_LINES && !log.again) return;
          log.again = false;
        }
      } catch (error) {
        if (error.status !== 404) NH.apiFailed(error, "Could not read the run's log");
      } finally {
        if (log.sessionId === sessionId) log.reading = null;
      }
    })();
    return log.reading;
  }

  function logFrame(data) {
    if (data.sessionId !== log.sessionId) {
      showLogOf(data.sessionId, null);
      return;
    }
    if (data.seq === log.lastSeq + 1 && !log.reading) appendLines([data]);
    else if (data.seq > log.lastSeq) readLog(); // frames were skipped: the rest is read
  }

  const handlers = {
    "agent:log"(data) {
      logFrame(data);
    },
    "agent:started"(data) {
      showLogOf(data.sessionId, data.attempt);
      agent.status = "RUNNING";
      agent.lastRunAt = data.timestamp;
      board.started(agent.id, "Attempt " + data.attempt, { startedAt: data.timestamp, attempt: data.attempt, progress: 0 });
      feed.add("started", data.timestamp, "Started" + (data.attempt > 1 ? " · attempt " + data.attempt : ""));
      // The trigger is not in the event; the history re-read at the end has it.
      upsertRecent({ id: data.sessionId, status: "RUNNING", startedAt: data.timestamp, attempt: data.attempt, progress: 0 });
      NH.announce("Run started.");
      renderHeader();
      renderSchedule();
      renderChart();
      renderHistory();
      reloadSlotsSoon();
    },
    "agent:progress"(data) {
      agent.status = "RUNNING";
      board.progress(agent.id, "Current run", data.progress, data.message);
      feed.add("progress", data.timestamp, data.progress + "%", data.message || null, "progress:" + data.sessionId);
      upsertRecent({ id: data.sessionId, status: "RUNNING", progress: data.progress });
      renderHistory();
    },
    "agent:completed"(data) {
      agent.status = "IDLE";
      agent.retryCount = 0;
      agent.lastError = "";
      board.finished(agent.id, null, true, "Completed in " + NH.duration(data.duration));
      feed.add("completed", data.timestamp, "Completed in " + NH.duration(data.duration), data.outputSummary || null);
      NH.announce("Run completed in " + NH.duration(data.duration) + ".");
      renderHeader();
      renderSchedule();
      reloadRunsSoon();
      reloadSlotsSoon();
      if (data.sessionId === log.sessionId) readLog();
    },
    "agent:failed"(data) {
      agent.status = data.willRetry ? "QUEUED" : "ERROR";
      agent.retryCount = data.retryCount;
      agent.lastError = data.error;
      board.finished(agent.id, null, false, data.willRetry ? "Retry scheduled" : "No retries left");
      feed.add("failed", data.timestamp, "Failed" + (data.willRetry ? " · will retry" : ""), data.error || null);
      NH.announce("Run failed." + (data.willRetry ? " It will be retried." : ""));
      renderHeader();
      renderSchedule();
      reloadRunsSoon();
      reloadSlotsSoon();
      if (data.sessionId === log.sessionId) readLog();
    },
  };

  let refreshRetry = null;

  async function refresh(attempt = 0) {
    window.clearTimeout(refreshRetry);
    try {
      const [fresh, detail] = await Promise.all([api("GET", base), api("GET", base + "/schedule")]);
      agent = Object.assign(agent, fresh);
      applySchedule(detail);
      const runs = await reloadRuns();
      reloadSlotsSoon();
      // Lines logged while the socket was away.
      const newest = runs.find((session) => session.startedAt);
      if (newest && newest.id !== log.sessionId) showLogOf(newest.id, newest.attempt);
      else readLog();
      reloadChangesSoon();
      if (page.offset > 0) await loadPage(page.offset);
      const active = runs.find((s) => s.status === "RUNNING") || runs.find((s) => s.status === "QUEUED");
      if (active && active.status === "RUNNING") {
        board.started(agent.id, "Attempt " + active.attempt, { startedAt: active.startedAt, attempt: active.attempt, progress: active.progress });
      } else if (active) board.queued(agent.id, "Queued run");
      else if (board.has(agent.id)) board.remove(agent.id);
    } catch (error) {
      if (error.status === 404) {
        NH.toast("This agent no longer exists.", "error");
        return;
      }
      // A socket can be back a moment before a busy server answers requests:
      // the page must not stay behind what it missed, so it asks again.
      if (attempt < 4) refreshRetry = window.setTimeout(() => refresh(attempt + 1), 2000 * (attempt + 1));
      else NH.apiFailed(error, "Could not refresh");
    }
    renderHeader();
    renderSchedule();
  }

  window.setInterval(() => {
    // A passed slot leaves the list; the next one is already in it. Only when
    // the list runs short is the schedule read again, at most once a minute.
    const now = Date.now();
    const ahead = schedule.upcomingRuns.filter((run) => NH.toDate(run).getTime() > now);
    if (ahead.length !== schedule.upcomingRuns.length) {
      schedule.upcomingRuns = ahead;
      if (agent.scheduleEnabled) agent.nextRunAt = ahead[0] || agent.nextRunAt;
      renderSchedule();
    }
    if (agent.scheduleEnabled && ahead.length < 2 && now - lastDueRefresh > 60000) {
      lastDueRefresh = now;
      api("GET", base + "/schedule")
        .then((detail) => {
          applySchedule(detail);
          renderSchedule();
        })
        .catch(() => {});
    }
  }, 5000);

  // --- statistics -----------------------------------------------------------------------------

  let statsWindow = "24h";
  let statsData = null;

  /** One trend from the window's buckets: a line through the buckets that have a value. */
  function renderTrend(figure, buckets, valueOf, top, format) {
    figure.querySelectorAll("svg, .chart-empty").forEach((node) => node.remove());
    const points = buckets.map((bucket, index) => [index, valueOf(bucket)]).filter(([, v]) => v !== null);
    if (!points.length) {
      figure.append(h("div", { class: "chart-empty", text: "No finished runs in this window." }));
      return;
    }
    const width = Math.max(240, Math.round(figure.clientWidth || 360));
    const height = 120;
    const left = 52;
    const plotH = height - 26;
    const slot = (width - left) / buckets.length;
    const at = (index, value) => [left + slot * (index + 0.5), 8 + plotH * (1 - value / top)];
    const name = figure.querySelector("figcaption").textContent + " per " + (buckets.length === 24 ? "hour" : "day");
    const root = svg("svg", { viewBox: "0 0 " + width + " " + height, width, height, role: "img", "aria-label": name });
    for (const fraction of [0, 0.5, 1]) {
      const y = 8 + plotH * (1 - fraction);
      root.append(svg("line", { class: "grid", x1: left, x2: width, y1: y, y2: y }));
      const label = svg("text", { class: "axis", x: left - 8, y: y + 3.5, "text-anchor": "end" });
      label.textContent = format(top * fraction);
      root.append(label);
    }
    root.append(svg("polyline", { class: "t-line", points: points.map(([i, v]) => at(i, v).join(",")).join(" ") }));
    for (const [index, value] of points) {
      const [x, y] = at(index, value);
      const dot = svg("circle", { class: "t-dot", cx: x, cy: y, r: 2.5 });
      dot.append(svg("title", {}, document.createTextNode(NH.dateTime(buckets[index].start) + " · " + format(value))));
      root.append(dot);
    }
    const first = svg("text", { class: "axis", x: left, y: height - 5 });
    first.textContent = NH.dateTime(buckets[0].start);
    const last = svg("text", { class: "axis", x: width, y: height - 5, "text-anchor": "end" });
    last.textContent = "now";
    root.append(first, last);
    figure.append(root);
  }

  function renderStats() {
    if (!statsData) return;
    const data = statsData;
    const rate = (value) => (value === null ? "—" : Math.round(value * 100) + "%");
    const figures = [
      ["Runs", String(data.runs)],
      ["Success rate", rate(data.successRate)],
      ["Failed", String(data.failed)],
      ["Duration p50", NH.duration(data.duration.p50) || "—"],
      ["Duration p95", NH.duration(data.duration.p95) || "—"],
    ];
    fill(document.getElementById("stats-figures"), ...figures.map(([dt, dd]) => h("div", {}, h("dt", { text: dt }), h("dd", { text: dd }))));
    const decided = (b) => b.succeeded + b.failed;
    renderTrend(document.getElementById("stats-rate"), data.buckets, (b) => (decided(b) ? b.succeeded / decided(b) : null), 1, rate);
    const p95s = data.buckets.map((b) => b.durationP95).filter((v) => v !== null);
    renderTrend(document.getElementById("stats-p95"), data.buckets, (b) => b.durationP95, niceCeiling(Math.max(...p95s, 0)), NH.duration);
  }

  let statsLoadedAt = 0;

  async function reloadStats() {
    statsLoadedAt = Date.now();
    statsData = await api("GET", base + "/stats?window=" + statsWindow);
    renderStats();
  }

  // Finished runs change the figures; a minute's lag spares the user's rate limit.
  function reloadStatsLater() {
    if (Date.now() - statsLoadedAt > 60000) reloadStats().catch(() => {});
  }

  document.getElementById("stats-window").addEventListener("click", (event) => {
    const button = event.target.closest("[data-window]");
    if (!button || button.dataset.window === statsWindow) return;
    statsWindow = button.dataset.window;
    for (const other of event.currentTarget.querySelectorAll("[data-window]")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    reloadStats().catch((error) => NH.apiFailed(error, "Could not load the statistics"));
  });

  // --- start --------------------------------------------------------------------------------

  renderHeader();
  renderSchedule();
  renderChart();
  renderHistory();
  reloadSlots().catch((error) => NH.apiFailed(error, "Could not load the slots"));
  // The log of the newest run that started (the current one, or the last).
  const logged = recent.find((session) => session.startedAt);
  if (logged) showLogOf(logged.id, logged.attempt);
  else renderLogState();
  reloadChanges().catch((error) => NH.apiFailed(error, "Could not load the changes"));
  reloadStats().catch((error) => NH.apiFailed(error, "Could not load the statistics"));
  if (window.ResizeObserver) {
    let lastWidth = 0;
    new ResizeObserver((entries) => {
      const width = Math.round(entries[0].contentRect.width);
      if (Math.abs(width - lastWidth) > 4) {
        lastWidth = width;
        renderChart();
        renderStats();
      }
    }).observe(document.getElementById("chart"));
  }
  const active = initial.activeSession;
  if (active && active.status === "RUNNING") {
    board.started(agent.id, "Attempt " + active.attempt, { startedAt: active.startedAt, attempt: active.attempt, progress: active.progress });
  } else if (active) {
    board.queued(agent.id, "Queued run");
  }

  new NH.LiveSocket({
    subscriptions: [{ event: "agent:subscribe", data: agent.id }],
    onFrame(frame) {
      const handler = handlers[frame.event];
      if (handler && frame.data && frame.data.agentId === agent.id) handler(frame.data);
    },
    onReconnect: () => refresh(),
  }).connect();

  NH.agentPage = { refresh, reloadRuns };
})();
