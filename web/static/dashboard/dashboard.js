/* The agents dashboard: the table of agents, the scheduler figures and the live panel.
 *
 * The server renders the page with its state embedded (the REST API's shapes);
 * WebSocket events keep it current, and after a dropped socket the state is
 * read again over REST. REST calls are few on purpose: they count against the
 * user's API rate limit.
 */
(function () {
  "use strict";

  const NH = window.NeonHub;
  const { h, fill, icon, api } = NH;

  const initial = NH.embedded("dashboard-state");
  if (!initial) return;

  const agents = new Map(initial.agents.map((agent) => [agent.id, agent]));
  const rows = new Map();
  const tbody = document.querySelector("#agents-table tbody");
  const statusInterval = (initial.statusInterval || 10) * 1000;
  let scheduler = initial.scheduler;
  let schedulerSeenAt = Date.now();
  let lastSchedulerText = "";
  let lastDueRefresh = 0;
  let lastStaleRefresh = 0;
  let refreshing = null;

  const board = new NH.RunBoard(
    document.getElementById("running-list"),
    document.getElementById("running-empty"),
    { linkFor: agentUrl },
  );
  const feed = new NH.Feed(document.getElementById("feed"), document.getElementById("feed-empty"));

  function agentUrl(id) {
    return "/dashboard/agents/" + id + "/";
  }

  function nameOf(id, fallback) {
    const agent = agents.get(id);
    return (agent && agent.name) || fallback || "An agent";
  }

  function agentLink(id, fallback) {
    return h("a", { href: agentUrl(id), text: nameOf(id, fallback) });
  }

  // --- the agents table ---------------------------------------------------------------------

  function statusPill(agent) {
    return h("span", { class: "pill", dataset: { status: agent.status } }, NH.titleCase(agent.status));
  }

  function scheduleCell(agent) {
    if (!agent.scheduleExpression) return [h("span", { class: "muted", text: "Not scheduled" })];
    const tz = agent.scheduleTimezone && agent.scheduleTimezone !== "UTC" ? " · " + agent.scheduleTimezone : "";
    return [
      h("span", { class: "desc", text: agent.description || agent.scheduleExpression }),
      h("code", { text: agent.scheduleExpression + tz }),
    ];
  }

  function nextCell(agent) {
    if (!agent.scheduleExpression) return [h("span", { class: "muted", text: "—" })];
    if (!agent.scheduleEnabled) {
      return [h("span", { class: "pill", dataset: { status: "PAUSED" }, text: "Paused" })];
    }
    if (!agent.nextRunAt) return [h("span", { class: "muted", text: "—" })];
    const when = NH.toDate(agent.nextRunAt);
    if (when && when.getTime() < Date.now() - 2000) {
      return [h("span", { class: "next-due", text: "Due now" }), h("span", { class: "sub", text: NH.soon(when) })];
    }
    return [NH.timeAgo(agent.nextRunAt, "next-run"), h("span", { class: "sub", text: NH.soon(agent.nextRunAt) })];
  }

  function lastCell(agent) {
    const session = agent.lastSession;
    if (!session) return [h("span", { class: "muted", text: "Never run" })];
    const when = session.completedAt || session.startedAt;
    if (session.status === "SUCCEEDED") {
      return [
        h("span", { class: "result ok" }, icon("check"), "Succeeded", session.duration != null ? " · " + NH.duration(session.duration) : ""),
        h("span", { class: "sub" }, NH.timeAgo(when)),
      ];
    }
    if (session.status === "FAILED") {
      return [
        h("span", { class: "result bad" }, icon("x"), "Failed", agent.retryCount > 1 ? " · " + agent.retryCount + " in a row" : ""),
        h("span", { class: "sub", title: session.errorMessage || "" }, session.errorMessage || NH.timeAgo(when)),
      ];
    }
    return [h("span", { class: "result other", text: NH.titleCase(session.status) }), h("span", { class: "sub" }, NH.timeAgo(when))];
  }

  function actionsCell(agent) {
    const run = h(
      "button",
      {
        type: "button",
        class: "btn btn-sm btn-run",
        "data-action": "run",
        "aria-label": "Run " + agent.name + " now",
      },
      icon("play"),
      "Run now",
    );
    const buttons = [run];
    if (agent.scheduleExpression) buttons.push(NH.scheduleToggle(agent, { compact: true }));
    return buttons;
  }

  function miniBar(progress) {
    const fillBar = h("span", { class: "bar-fill" });
    fillBar.style.width = progress + "%";
    return h("span", { class: "mini bar", "aria-hidden": "true" }, fillBar);
  }

  // The last 24 hours of every listed agent, from one request (GET /api/agents/stats).
  const sparks = new Map();

  // Under the last result, so the table keeps its columns (and its narrowest width).
  function sparkOf(agent) {
    const stats = sparks.get(agent.id);
    if (!stats || !agent.lastSession) return null;
    const rate = stats.successRate === null ? "" : ", " + Math.round(stats.successRate * 100) + "% succeeded";
    const p95 = stats.duration.p95 === null ? "" : ", p95 " + NH.duration(stats.duration.p95);
    return NH.sparkline(stats.buckets, stats.runs + " runs in 24 h" + rate + p95);
  }

  async function reloadSparklines() {
    const data = await api("GET", "/api/agents/stats?window=24h&limit=100");
    sparks.clear();
    for (const row of data.agents) sparks.set(row.agentId, row);
    renderAll();
  }

  function newRow(agent) {
    const tr = h(
      "tr",
      { "data-agent-id": agent.id },
      h("th", { scope: "row", class: "c-agent" }),
      h("td", { class: "c-status" }),
      h("td", { class: "c-schedule" }),
      h("td", { class: "c-next" }),
      h("td", { class: "c-last" }),
      h("td", { class: "c-actions" }),
    );
    return tr;
  }

  function renderRow(agent) {
    let tr = rows.get(agent.id);
    if (!tr) {
      tr = tbody.querySelector('tr[data-agent-id="' + agent.id + '"]') || newRow(agent);
      rows.set(agent.id, tr);
      if (!tr.isConnected) tbody.prepend(tr);
    }
    const [nameCell, statusCell, scheduleCellNode, nextCellNode, lastCellNode, actions] = tr.children;
    fill(
      nameCell,
      h("a", { href: agentUrl(agent.id), text: agent.name }),
      h(
        "span",
        { class: "meta" },
        h("span", { class: "chip", text: agent.agentType }),
        agent.priority && agent.priority !== "NORMAL"
          ? h("span", { class: "prio", dataset: { priority: agent.priority }, text: NH.titleCase(agent.priority) + " priority" })
          : null,
      ),
    );
    const active = agent.activeSession;
    const progress = active && active.status === "RUNNING" ? active.progress || 0 : null;
    fill(
      statusCell,
      statusPill(agent),
      progress !== null ? miniBar(progress) : null,
    );
    fill(scheduleCellNode, scheduleCell(agent));
    fill(nextCellNode, nextCell(agent));
    fill(lastCellNode, lastCell(agent), sparkOf(agent));
    // Keep the buttons while a request is in flight so focus is not lost.
    if (!actions.querySelector("[aria-busy]")) {
      const focused = document.activeElement && actions.contains(document.activeElement)
        ? document.activeElement.dataset.action
        : null;
      fill(actions, actionsCell(agent));
      if (focused) {
        const again = actions.querySelector('[data-action="' + focused + '"]')
          || actions.querySelector('[data-action="pause"], [data-action="resume"]');
        if (again) again.focus();
      }
    }
    tr.dataset.status = agent.status;
    tr.dataset.search = [agent.name, agent.agentType, agent.status, agent.description || ""].join(" ").toLowerCase();
  }

  function removeRow(id) {
    const tr = rows.get(id) || tbody.querySelector('tr[data-agent-id="' + id + '"]');
    if (tr) tr.remove();
    rows.delete(id);
    agents.delete(id);
    board.remove(id);
  }

  function renderAll() {
    for (const agent of agents.values()) renderRow(agent);
    syncTable();
  }

  function syncTable() {
    const count = agents.size;
    document.getElementById("agents-empty").hidden = count > 0;
    const query = document.getElementById("agent-filter").value.trim().toLowerCase();
    let shown = 0;
    for (const tr of rows.values()) {
      const match = !query || tr.dataset.search.includes(query);
      tr.hidden = !match;
      if (match) shown += 1;
    }
    document.getElementById("agents-nomatch").hidden = !(count > 0 && shown === 0);
    const scheduled = [...agents.values()].filter((a) => a.scheduleExpression && a.scheduleEnabled).length;
    const running = [...agents.values()].filter((a) => a.status === "RUNNING").length;
    const parts = [count + " agent" + (count === 1 ? "" : "s"), scheduled + " on a schedule"];
    if (running) parts.push(running + " running");
    document.getElementById("agents-summary").textContent = parts.join(" · ");
    renderScheduler();
  }

  // --- scheduler figures --------------------------------------------------------------------

  function renderScheduler() {
    const stale = Date.now() - schedulerSeenAt > Math.max(3 * statusInterval, 30000);
    const beat = document.getElementById("stat-beat");
    beat.dataset.alive = scheduler.isRunning ? (stale ? "stale" : "true") : "false";
    beat.querySelector('[data-field="beat"]').textContent = scheduler.isRunning
      ? stale
        ? "No recent report"
        : "Alive"
      : "Not reporting";
    fill(
      beat.querySelector('[data-field="updated"]'),
      "Updated ",
      NH.timeAgo(new Date(schedulerSeenAt)),
    );
    const figures = liveFigures();
    const running = document.getElementById("stat-running");
    running.querySelector('[data-field="running"]').textContent = figures.running;
    running.querySelector('[data-field="cap"]').textContent = scheduler.maxConcurrentAgents;
    const meter = running.querySelector(".meter");
    const cap = Math.max(1, scheduler.maxConcurrentAgents);
    const used = Math.min(cap, figures.running);
    meter.setAttribute("aria-valuemax", String(cap));
    meter.setAttribute("aria-valuenow", String(used));
    meter.setAttribute("aria-valuetext", used + " of " + cap + " slots in use");
    meter.dataset.full = String(used >= cap);
    meter.querySelector(".meter-fill").style.width = (100 * used) / cap + "%";
    document.querySelector('#stat-queued [data-field="queued"]').textContent = figures.queued;
    document.querySelector('#stat-scheduled [data-field="scheduled"]').textContent = scheduler.scheduledTasksCount;
  }

  function schedulerText(stats) {
    return (
      stats.runningAgentsCount + " running · " + stats.queuedTasksCount + " queued · cap " +
      stats.maxConcurrentAgents + " · beat " + (stats.isRunning ? "alive" : "not reporting")
    );
  }

  /** The scheduler's figures, never below what this page has seen itself.
   *
   * scheduler:status comes after every finished run and on a timer, so a run
   * that just started may not be counted yet; the agents this page watches
   * give a lower bound (staff watch them all) until the next status arrives. */
  function liveFigures() {
    let running = 0;
    let queued = 0;
    for (const agent of agents.values()) {
      if (agent.status === "RUNNING") running += 1;
      else if (agent.status === "QUEUED") queued += 1;
    }
    return {
      running: Math.max(scheduler.runningAgentsCount, running),
      queued: Math.max(scheduler.queuedTasksCount, queued),
    };
  }

  function onScheduler(stats, time) {
    scheduler = Object.assign({}, scheduler, stats);
    schedulerSeenAt = Date.now();
    renderScheduler();
    // The timer repeats the same figures every few seconds: only changes go to the feed.
    const text = schedulerText(scheduler);
    if (text !== lastSchedulerText) {
      lastSchedulerText = text;
      feed.add("scheduler", time, [h("strong", { text: "Scheduler" }), " " + text]);
    }
  }

  // --- events -------------------------------------------------------------------------------

  function ensureAgent(data) {
    let agent = agents.get(data.agentId);
    if (!agent) {
      // An agent created after the page loaded: show what the event tells,
      // and read the rest over REST.
      agent = {
        id: data.agentId,
        name: data.agentName || "New agent",
        agentType: data.agentType || "",
        status: "IDLE",
        scheduleExpression: null,
        scheduleEnabled: false,
        lastSession: null,
        activeSession: null,
      };
      agents.set(agent.id, agent);
      scheduleRefresh(1500);
    }
    if (data.agentName) agent.name = data.agentName;
    return agent;
  }

  const handlers = {
    "agent:started"(data) {
      const agent = ensureAgent(data);
      agent.status = "RUNNING";
      agent.lastRunAt = data.timestamp;
      agent.activeSession = { id: data.sessionId, status: "RUNNING", progress: 0, startedAt: data.timestamp, attempt: data.attempt };
      board.started(agent.id, agent.name, { startedAt: data.timestamp, attempt: data.attempt, progress: 0 });
      const detail = [data.priority && data.priority !== "NORMAL" ? NH.titleCase(data.priority) + " priority" : null, data.attempt > 1 ? "attempt " + data.attempt : null]
        .filter(Boolean)
        .join(" · ");
      feed.add("started", data.timestamp, [agentLink(agent.id), " started"], detail || null);
      NH.announce(agent.name + " started.");
      renderRow(agent);
      syncTable();
    },
    "agent:progress"(data) {
      const agent = ensureAgent(data);
      agent.status = "RUNNING";
      agent.activeSession = Object.assign({ id: data.sessionId, status: "RUNNING" }, agent.activeSession, { progress: data.progress });
      board.progress(agent.id, agent.name, data.progress, data.message);
      feed.add(
        "progress",
        data.timestamp,
        [agentLink(agent.id), " at " + data.progress + "%"],
        data.message || null,
        "progress:" + data.sessionId,
      );
      renderRow(agent);
    },
    "agent:completed"(data) {
      const agent = ensureAgent(data);
      agent.status = "IDLE";
      agent.retryCount = 0;
      agent.lastError = "";
      agent.activeSession = null;
      agent.lastSession = {
        id: data.sessionId,
        status: "SUCCEEDED",
        success: true,
        duration: data.duration,
        completedAt: data.timestamp,
        outputSummary: data.outputSummary,
      };
      board.finished(agent.id, agent.name, true, "Completed in " + NH.duration(data.duration));
      feed.add("completed", data.timestamp, [agentLink(agent.id), " completed in " + NH.duration(data.duration)], data.outputSummary || null);
      NH.announce(agent.name + " completed in " + NH.duration(data.duration) + ".");
      renderRow(agent);
      syncTable();
    },
    "agent:failed"(data) {
      const agent = ensureAgent(data);
      agent.status = data.willRetry ? "QUEUED" : "ERROR";
      agent.retryCount = data.retryCount;
      agent.lastError = data.error;
      agent.activeSession = data.willRetry ? { status: "QUEUED", progress: 0 } : null;
      agent.lastSession = { id: data.sessionId, status: "FAILED", success: false, completedAt: data.timestamp, errorMessage: data.error };
      const retry = data.willRetry ? "Retry " + data.retryCount + " scheduled" : "No retries left";
      board.finished(agent.id, agent.name, false, retry);
      feed.add("failed", data.timestamp, [agentLink(agent.id), " failed · " + retry.toLowerCase()], data.error || null);
      NH.announce(agent.name + " failed. " + retry + ".");
      renderRow(agent);
      syncTable();
    },
    "scheduler:status"(data) {
      onScheduler(data, data.timestamp);
    },
  };

  function onFrame(frame) {
    const handler = handlers[frame.event];
    if (handler && frame.data) handler(frame.data);
  }

  // --- actions ------------------------------------------------------------------------------

  async function runNow(agent, button) {
    NH.busy(button, true);
    try {
      const data = await api("POST", "/api/agents/" + agent.id + "/run");
      if (agent.status !== "RUNNING") {
        agent.status = "QUEUED";
        agent.activeSession = { id: data.sessionId, status: "QUEUED", progress: 0 };
        board.queued(agent.id, agent.name);
      }
      feed.add("queued", new Date(), [agentLink(agent.id), " queued to run now"]);
      NH.announce(agent.name + " queued to run now.");
    } catch (error) {
      NH.apiFailed(error, "Could not run " + agent.name);
    } finally {
      NH.busy(button, false);
      renderRow(agent);
      syncTable();
    }
  }

  /** Pausing asks for a note and an end, resuming for what to do with the missed slots. */
  async function changeSchedule(agent, resume, button) {
    NH.busy(button, true);
    try {
      const data = await (resume ? NH.resumeSchedule(agent) : NH.pauseSchedule(agent));
      if (!data) return;
      Object.assign(agent, {
        scheduleEnabled: data.scheduleEnabled,
        scheduleExpression: data.scheduleExpression,
        scheduleTimezone: data.scheduleTimezone,
        priority: data.priority,
        nextRunAt: data.nextRunAt,
        pauseNote: data.pauseNote,
      });
      const text = agent.name + (data.scheduleEnabled ? ": schedule resumed." : ": schedule paused.");
      NH.toast(text, "ok");
      NH.announce(text);
    } catch (error) {
      NH.apiFailed(error, "Could not " + (resume ? "resume " : "pause ") + agent.name);
    } finally {
      NH.busy(button, false);
      renderRow(agent);
      syncTable();
    }
  }

  tbody.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || NH.isBusy(button)) return;
    const agent = agents.get(button.closest("tr").dataset.agentId);
    if (!agent) return;
    if (button.dataset.action === "run") runNow(agent, button);
    else changeSchedule(agent, button.dataset.action === "resume", button);
  });

  document.getElementById("agent-filter").addEventListener("input", syncTable);
  document.getElementById("feed-clear").addEventListener("click", () => feed.clear());

  // --- re-reading over REST -----------------------------------------------------------------

  function scheduleRefresh(delay) {
    window.clearTimeout(scheduleRefresh.timer);
    scheduleRefresh.timer = window.setTimeout(refresh, delay);
  }

  function refresh() {
    if (!refreshing) {
      refreshing = doRefresh()
        .catch((error) => NH.apiFailed(error, "Could not refresh"))
        .finally(() => {
          refreshing = null;
        });
    }
    return refreshing;
  }

  async function doRefresh() {
    const [list, stats] = await Promise.all([
      api("GET", "/api/agents?limit=100"),
      api("GET", "/api/agents/scheduler/status"),
    ]);
    const seen = new Set();
    const needSchedule = [];
    const needSession = [];
    for (const fresh of list.agents) {
      seen.add(fresh.id);
      const known = agents.get(fresh.id);
      const merged = Object.assign({}, known || { lastSession: null, activeSession: null, description: null }, fresh);
      delete merged.configuration;
      const sameRule =
        known &&
        known.scheduleExpression === fresh.scheduleExpression &&
        known.scheduleTimezone === fresh.scheduleTimezone;
      if (fresh.scheduleExpression && !sameRule) merged.upcomingRuns = [];
      const future = (merged.upcomingRuns || []).filter((run) => NH.toDate(run).getTime() > Date.now());
      if (fresh.scheduleExpression && (!sameRule || (fresh.scheduleEnabled && !future.length))) {
        needSchedule.push(merged);
      }
      if (!fresh.scheduleExpression) {
        merged.description = null;
        merged.upcomingRuns = [];
      }
      const active = fresh.status === "RUNNING" || fresh.status === "QUEUED";
      if (active || (known && (known.activeSession || known.lastRunAt !== fresh.lastRunAt))) {
        needSession.push(merged);
      }
      if (!active) merged.activeSession = null;
      agents.set(fresh.id, merged);
    }
    for (const id of [...agents.keys()]) if (!seen.has(id)) removeRow(id);
    // A handful of small requests at most: only what changed while we were away.
    await Promise.all([
      ...needSchedule.slice(0, 10).map(async (agent) => {
        const schedule = await api("GET", "/api/agents/" + agent.id + "/schedule");
        agent.description = schedule.description;
        agent.upcomingRuns = schedule.upcomingRuns || [];
      }),
      ...needSession.slice(0, 10).map(async (agent) => {
        const page = await api("GET", "/api/agents/" + agent.id + "/sessions?limit=2");
        syncSessions(agent, page.sessions);
      }),
    ]);
    onScheduler(stats, new Date());
    renderAll();
    reloadSparklines().catch(() => {});
  }

  function syncSessions(agent, sessions) {
    const active = sessions.find((s) => s.status === "RUNNING") || sessions.find((s) => s.status === "QUEUED");
    const done = sessions.find((s) => s.status !== "RUNNING" && s.status !== "QUEUED");
    if (done) agent.lastSession = done;
    agent.activeSession = active || null;
    if (active && active.status === "RUNNING") {
      board.started(agent.id, agent.name, { startedAt: active.startedAt, attempt: active.attempt, progress: active.progress });
    } else if (active) {
      board.queued(agent.id, agent.name);
    } else if (board.has(agent.id) && done) {
      board.finished(agent.id, agent.name, done.status === "SUCCEEDED", NH.titleCase(done.status));
    }
  }

  // --- timers -------------------------------------------------------------------------------

  /** After a slot passes the next run is the following slot of the same rule,
   * known from the upcoming runs the page was given: no request needed. */
  function advanceSchedule(agent, now) {
    if (!agent.scheduleEnabled || !agent.nextRunAt) return false;
    if (NH.toDate(agent.nextRunAt).getTime() >= now - 2000) return false;
    const ahead = (agent.upcomingRuns || []).filter((run) => NH.toDate(run).getTime() > now);
    agent.upcomingRuns = ahead;
    if (ahead.length) agent.nextRunAt = ahead[0];
    renderRow(agent);
    return !ahead.length;
  }

  window.setInterval(() => {
    const now = Date.now();
    let due = false;
    for (const agent of agents.values()) if (advanceSchedule(agent, now)) due = true;
    // Out of known slots: read the agents again, at most once a minute.
    if (due && now - lastDueRefresh > 60000) {
      lastDueRefresh = now;
      refresh();
    }
    // Beat publishes its figures on a timer; silence means they may be out of date.
    const stale = now - schedulerSeenAt > Math.max(3 * statusInterval, 30000);
    if (stale && now - lastStaleRefresh > 60000) {
      lastStaleRefresh = now;
      api("GET", "/api/agents/scheduler/status")
        .then((stats) => onScheduler(stats, new Date()))
        .catch(() => {});
    }
    renderScheduler();
  }, 5000);

  // --- start --------------------------------------------------------------------------------

  renderAll();
  renderScheduler();
  reloadSparklines().catch((error) => NH.apiFailed(error, "Could not load the statistics"));
  // Every five minutes: a bar is an hour, and the user's rate limit is shared with the page.
  window.setInterval(() => reloadSparklines().catch(() => {}), 300000);
  lastSchedulerText = schedulerText(scheduler);
  for (const agent of agents.values()) {
    const active = agent.activeSession;
    if (active && active.status === "RUNNING") {
      board.started(agent.id, agent.name, { startedAt: active.startedAt, attempt: active.attempt, progress: active.progress });
    } else if (active && active.status === "QUEUED") {
      board.queued(agent.id, agent.name);
    }
  }

  new NH.LiveSocket({
    subscriptions: [
      { event: "monitoring:subscribe", data: "agents" },
      { event: "monitoring:subscribe", data: "scheduler" },
    ],
    onFrame,
    onReconnect: refresh,
  }).connect();

  // For tests and for people poking at the page from the console.
  NH.dashboard = { agents, refresh, feed, board };
})();
