/* Alerts on both pages: the open alerts (live from the socket's agent:alert and
 * agent:alert_resolved frames), the agent page's rules editor and the main page's
 * alert channels.
 *
 * The page's own script owns the socket; this one hears its frames as document
 * "neonhub:frame" events and re-reads over REST after "neonhub:reconnect".
 */
(function () {
  "use strict";

  const NH = window.NeonHub;
  const { h, fill, api } = NH;

  const KIND_LABELS = { LATE: "Late", OVERRUN: "Overrun", FAILING: "Failing", PAUSED: "Paused" };
  const OPEN_LIMIT = 100;

  function agentUrl(id) {
    return "/dashboard/agents/" + id + "/";
  }

  // --- open alerts ----------------------------------------------------------------------------

  /**
   * The open alerts of the page (one agent's, or every agent's the user sees),
   * newest first. A frame that arrives while a read is under way is not undone
   * by the read's older answer.
   */
  class OpenAlerts {
    constructor(root, { agentId = null, showAgent = true } = {}) {
      this.list = root.querySelector("#alerts-list");
      this.empty = root.querySelector("#alerts-empty");
      this.count = root.querySelector("#alerts-count");
      this.agentId = agentId;
      this.showAgent = showAgent;
      this.alerts = new Map();
      this.changed = new Map(); // alert id -> the alert, or null once resolved, during a read
      this.reading = null;
      this.again = false;
      this.loaded = false;
    }

    url() {
      const query = "?status=open&limit=" + OPEN_LIMIT;
      return "/api/alerts" + query + (this.agentId ? "&agentId=" + encodeURIComponent(this.agentId) : "");
    }

    reload() {
      if (this.reading) {
        this.again = true;
        return this.reading;
      }
      this.changed.clear();
      this.reading = (async () => {
        try {
          const data = await api("GET", this.url());
          const fresh = new Map(data.alerts.map((alert) => [alert.id, alert]));
          for (const [id, alert] of this.changed) {
            if (alert) fresh.set(id, alert);
            else fresh.delete(id);
          }
          this.alerts = fresh;
          this.loaded = true;
          this.render();
        } catch (error) {
          NH.apiFailed(error, "Could not load the alerts");
        } finally {
          this.reading = null;
          this.changed.clear();
        }
        if (this.again) {
          this.again = false;
          await this.reload();
        }
      })();
      return this.reading;
    }

    /** The agent's name as this page knows it, or null. */
    nameOf(agentId) {
      for (const alert of this.alerts.values()) if (alert.agentId === agentId) return alert.agentName;
      const known = NH.dashboard && NH.dashboard.agents.get(agentId);
      if (known) return known.name;
      const state = NH.embedded("agent-state");
      return state && state.agent.id === agentId ? state.agent.name : null;
    }

    opened(data) {
      if (this.agentId && data.agentId !== this.agentId) return;
      if (this.alerts.has(data.alertId)) return;
      const name = this.nameOf(data.agentId);
      if (!name) {
        // An agent this page has not heard of: the list answers with its name.
        this.reload();
        return;
      }
      const alert = {
        id: data.alertId,
        agentId: data.agentId,
        agentName: name,
        kind: data.kind,
        message: data.message,
        openedAt: data.timestamp,
      };
      this.alerts.set(alert.id, alert);
      if (this.reading) this.changed.set(alert.id, alert);
      this.render();
      NH.announce((this.showAgent ? name + ": " : "") + (KIND_LABELS[data.kind] || data.kind) + " alert opened. " + data.message);
    }

    resolved(data) {
      if (this.agentId && data.agentId !== this.agentId) return;
      const known = this.alerts.get(data.alertId);
      this.alerts.delete(data.alertId);
      if (this.reading) this.changed.set(data.alertId, null);
      this.render();
      if (known) {
        const who = this.showAgent ? known.agentName + ": " : "";
        NH.announce(who + (KIND_LABELS[data.kind] || data.kind) + " alert resolved. " + (data.resolution || ""));
      }
    }

    item(alert) {
      const kind = h("span", { class: "pill alert-kind", dataset: { kind: alert.kind }, text: KIND_LABELS[alert.kind] || alert.kind });
      const since = NH.timeAgo(alert.openedAt);
      return h(
        "li",
        { class: "alert-item", dataset: { alertId: alert.id, kind: alert.kind } },
        h(
          "p",
          { class: "alert-top" },
          kind,
          this.showAgent ? h("a", { class: "alert-agent", href: agentUrl(alert.agentId), text: alert.agentName }) : null,
          since ? h("span", { class: "alert-since" }, "opened ", since) : null,
        ),
        h("p", { class: "alert-message", text: alert.message }),
      );
    }

    render() {
      const sorted = [...this.alerts.values()].sort((a, b) => String(b.openedAt).localeCompare(String(a.openedAt)));
      fill(this.list, sorted.map((alert) => this.item(alert)));
      const count = sorted.length;
      this.count.dataset.count = String(count);
      fill(this.count, String(count), h("span", { class: "visually-hidden", text: count === 1 ? " open alert" : " open alerts" }));
      this.empty.hidden = count > 0;
      this.empty.textContent = this.loaded ? "No open alerts." : "Loading the open alerts…";
    }

    listen() {
      document.addEventListener("neonhub:frame", (event) => {
        const frame = event.detail;
        if (!frame || !frame.data) return;
        if (frame.event === "agent:alert") this.opened(frame.data);
        else if (frame.event === "agent:alert_resolved") this.resolved(frame.data);
      });
      // Alerts that opened or resolved while the socket was away.
      document.addEventListener("neonhub:reconnect", () => this.reload());
    }
  }

  // --- rules (the agent page) -------------------------------------------------------------------

  const RULES = [
    {
      name: "lateAfterSeconds",
      kind: "LATE",
      label: "Late: a slot's run has not started",
      field: "Late after (seconds)",
      hint: "Seconds after the slot, 1 to 604800.",
      suggested: 300,
    },
    {
      name: "maxDurationSeconds",
      kind: "OVERRUN",
      label: "Overrun: a run goes on too long",
      field: "Overrun after (seconds)",
      hint: "Seconds since the run started, 1 to 604800.",
      suggested: 900,
    },
    {
      name: "failuresInARow",
      kind: "FAILING",
      label: "Failing: runs fail one after another",
      field: "Failing after (failed runs in a row)",
      hint: "Each with its retries used up, 1 to 1000.",
      suggested: 3,
    },
    {
      name: "pauseAfterFailures",
      kind: "PAUSED",
      label: "Pause the schedule after failures",
      field: "Pause after (failed runs in a row)",
      hint: "The schedule is paused with a note; it stays paused until resumed. 1 to 1000.",
      suggested: 10,
    },
  ];

  /** A whole number as typed, else the text itself, so the API names what is wrong with it. */
  function wholeNumber(text) {
    const value = text.trim();
    return /^\d+$/.test(value) ? Number(value) : value;
  }

  class RulesEditor {
    constructor(form, agentId) {
      this.form = form;
      this.base = "/api/agents/" + agentId + "/alerts";
      this.controls = new Map();
      this.channelBoxes = [];
      this.channelList = [];
    }

    async load() {
      try {
        const [rules, channels] = await Promise.all([api("GET", this.base), api("GET", "/api/alert-channels")]);
        this.render(rules, channels);
      } catch (error) {
        const loading = this.form.querySelector("#rules-loading");
        if (loading) loading.textContent = "Could not load the rules: " + error.message;
        NH.apiFailed(error, "Could not load the alert rules");
      }
    }

    render(rules, channels) {
      const heading = this.form.querySelector("#rules-heading");
      this.controls.clear();
      const rows = RULES.map((rule) => {
        const value = rules[rule.name];
        const on = value !== null && value !== undefined;
        const input = h("input", { type: "text", inputmode: "numeric", autocomplete: "off", value: on ? String(value) : "" });
        const field = NH.field(rule.name, rule.field, input, rule.hint);
        const toggleId = field.control.id + "-on";
        const toggle = h("input", { type: "checkbox", id: toggleId, checked: on, "aria-controls": field.control.id });
        input.disabled = !on;
        toggle.addEventListener("change", () => {
          input.disabled = !toggle.checked;
          if (toggle.checked && !input.value.trim()) input.value = String(rule.suggested);
          if (!toggle.checked) NH.setFieldError(input, "");
        });
        this.controls.set(rule.name, { toggle, input });
        return h(
          "div",
          { class: "rule", dataset: { kind: rule.kind } },
          h("div", { class: "rule-toggle" }, toggle, h("label", { for: toggleId, text: rule.label })),
          field.wrap,
        );
      });
      this.channelList = channels;
      const chosen = new Set(rules.channels || []);
      this.channelBoxes = channels.map((channel) => {
        const id = "rule-channel-" + channel.id;
        const box = h("input", { type: "checkbox", id, value: channel.id, checked: chosen.has(channel.id) });
        return { box, node: h("div", { class: "choice" }, box, h("label", { for: id }, channel.name, " ", h("span", { class: "chip", text: channel.kind }))) };
      });
      this.channelsError = h("p", { class: "field-error", id: "rules-channels-error", hidden: true });
      const channelSet = h(
        "fieldset",
        { class: "choices rule-channels", "aria-describedby": "rules-channels-error" },
        h("legend", { text: "Notify these channels" }),
        this.channelBoxes.length
          ? this.channelBoxes.map((entry) => entry.node)
          : h("p", { class: "muted" }, "You have no channels yet: ", h("a", { href: "/dashboard/#channels", text: "add one" }), ". Alerts still show here and on the Agents page."),
        this.channelsError,
      );
      this.problem = h("div", { class: "form-error", id: "rules-error", role: "alert", hidden: true });
      this.saved = h("span", { class: "rules-saved muted", id: "rules-saved", role: "status" });
      const failed = rules.failedRunsInARow;
      fill(
        this.form,
        heading,
        h("div", { class: "rules-grid" }, rows),
        channelSet,
        h("p", { class: "muted small", text: failed ? failed + (failed === 1 ? " run has" : " runs have") + " failed since the last success." : "No failed run since the last success." }),
        this.problem,
        h("div", { class: "rules-actions" }, h("button", { type: "submit", class: "btn btn-primary", id: "rules-save", text: "Save rules" }), this.saved),
      );
    }

    body() {
      const body = {};
      for (const [name, { toggle, input }] of this.controls) {
        body[name] = toggle.checked ? wholeNumber(input.value) : null;
      }
      body.channels = this.channelBoxes.filter((entry) => entry.box.checked).map((entry) => entry.box.value);
      return body;
    }

    showErrors(error) {
      const details = error.details || {};
      let first = null;
      for (const [name, { input }] of this.controls) {
        const messages = details[name];
        NH.setFieldError(input, messages ? [].concat(messages).join(" ") : "");
        if (messages && !first) first = input;
      }
      const channelMessages = details.channels;
      this.channelsError.textContent = channelMessages ? [].concat(channelMessages).join(" ") : "";
      this.channelsError.hidden = !channelMessages;
      // The summary repeats the first message, so it is read out even if focus stays put.
      this.problem.textContent = "Not saved: " + error.message;
      this.problem.hidden = false;
      if (first) first.focus();
    }

    clearErrors() {
      for (const { input } of this.controls.values()) NH.setFieldError(input, "");
      this.channelsError.hidden = true;
      this.problem.hidden = true;
    }

    listen() {
      this.form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const button = this.form.querySelector("#rules-save");
        if (!button || NH.isBusy(button)) return;
        NH.busy(button, true);
        this.saved.textContent = "";
        try {
          const rules = await api("PUT", this.base, this.body());
          this.render(rules, this.channelList);
          this.form.querySelector("#rules-saved").textContent = "Rules saved.";
          NH.toast("Alert rules saved.", "ok");
        } catch (error) {
          if (!(error instanceof NH.ApiError)) throw error;
          // The form keeps what was typed: only the messages change.
          this.showErrors(error);
        } finally {
          const again = this.form.querySelector("#rules-save");
          if (again) NH.busy(again, false);
        }
      });
      this.form.addEventListener("input", () => {
        if (this.saved) this.saved.textContent = "";
      });
    }
  }

  // --- channels (the main page) -----------------------------------------------------------------

  const CHANNEL_KINDS = [
    ["webhook", "Webhook (signed JSON)"],
    ["slack", "Slack or Mattermost incoming webhook"],
    ["email", "Email"],
  ];
  const TARGET_HINTS = {
    webhook: "The URL each alert is POSTed to.",
    slack: "The incoming-webhook URL Slack (or Mattermost) gave you.",
    email: "The address alerts are mailed to.",
  };

  class Channels {
    constructor(card) {
      this.card = card;
      this.tbody = card.querySelector("#channels-table tbody");
      this.empty = card.querySelector("#channels-empty");
      this.secretBox = card.querySelector("#channel-secret");
      this.channels = new Map();
      this.tests = new Map(); // channel id -> the last test's answer
    }

    async load() {
      try {
        const list = await api("GET", "/api/alert-channels");
        this.channels = new Map(list.map((channel) => [channel.id, channel]));
        this.render();
      } catch (error) {
        this.empty.textContent = "Could not load the channels: " + error.message;
        NH.apiFailed(error, "Could not load the alert channels");
      }
    }

    delivery(channel) {
      const parts = [];
      if (channel.lastError) {
        parts.push(h("span", { class: "result bad", text: "Failing: " + channel.lastError }));
        if (channel.lastErrorAt) parts.push(h("span", { class: "sub" }, NH.timeAgo(channel.lastErrorAt)));
      } else if (channel.lastSentAt) {
        parts.push(h("span", { class: "result ok", text: "Delivered" }), h("span", { class: "sub" }, NH.timeAgo(channel.lastSentAt)));
      } else {
        parts.push(h("span", { class: "muted", text: "Nothing sent yet" }));
      }
      const test = this.tests.get(channel.id);
      if (test) {
        parts.push(
          h("span", { class: "test-result", dataset: { delivered: String(test.delivered) }, text: test.delivered ? "Test delivered." : "Test failed: " + test.error }),
        );
      }
      return parts;
    }

    row(channel) {
      const button = (action, label, text) =>
        h("button", { type: "button", class: "btn btn-sm" + (action === "delete" ? " btn-ghost" : ""), dataset: { action }, "aria-label": label + " " + channel.name, text });
      return h(
        "tr",
        { dataset: { channelId: channel.id } },
        h("th", { scope: "row", text: channel.name }),
        h("td", {}, h("span", { class: "chip", text: channel.kind })),
        h("td", { class: "c-target" }, h("code", { text: channel.target })),
        h("td", { class: "c-delivery" }, this.delivery(channel)),
        h(
          "td",
          { class: "c-actions" },
          button("test", "Send a test to", "Send test"),
          button("edit", "Edit", "Edit"),
          button("delete", "Delete", "Delete"),
        ),
      );
    }

    render() {
      const focused = document.activeElement && this.tbody.contains(document.activeElement) ? document.activeElement : null;
      const keep = focused ? [focused.closest("tr").dataset.channelId, focused.dataset.action] : null;
      const sorted = [...this.channels.values()].sort((a, b) => a.name.localeCompare(b.name));
      fill(this.tbody, sorted.map((channel) => this.row(channel)));
      this.empty.hidden = sorted.length > 0;
      this.empty.textContent = "No channels yet. Add one, then choose it in an agent's alert rules.";
      if (keep) {
        const again = this.tbody.querySelector('tr[data-channel-id="' + keep[0] + '"] [data-action="' + keep[1] + '"]');
        if (again) again.focus();
      }
    }

    form(channel) {
      const name = NH.field("name", "Name", h("input", { type: "text", maxlength: "200", autocomplete: "off", value: channel ? channel.name : "" }));
      const kind = NH.field(
        "kind",
        "Kind",
        h("select", {}, CHANNEL_KINDS.map(([value, label]) => h("option", { value, selected: channel ? channel.kind === value : value === "webhook", text: label }))),
      );
      const target = NH.field("target", "Target", h("input", { type: "text", autocomplete: "off", spellcheck: "false", value: channel ? channel.target : "" }), TARGET_HINTS[channel ? channel.kind : "webhook"]);
      kind.control.addEventListener("change", () => {
        const hint = document.getElementById(target.control.id + "-hint");
        if (hint) hint.textContent = TARGET_HINTS[kind.control.value];
      });
      return { name, kind, target, fields: [name.wrap, h("div", { class: "field-row" }, kind.wrap, target.wrap)] };
    }

    async add() {
      const form = this.form(null);
      const created = await NH.openDialog({
        title: "Add an alert channel",
        intro: "After saving, a webhook channel's secret is shown once.",
        fields: form.fields,
        submitLabel: "Add channel",
        submit: () =>
          api("POST", "/api/alert-channels", {
            name: form.name.control.value,
            kind: form.kind.control.value,
            target: form.target.control.value.trim(),
          }),
      });
      if (!created) return;
      const { secret, ...channel } = created;
      this.channels.set(channel.id, channel);
      this.render();
      this.showSecret(channel, secret);
      NH.announce("Channel " + channel.name + " added.");
    }

    showSecret(channel, secret) {
      this.secretBox.querySelector('[data-field="title"]').textContent = "The secret of " + channel.name + ":";
      this.secretBox.querySelector('[data-field="secret"]').textContent = secret;
      this.secretBox.hidden = false;
      // Focus on the box, so a screen reader reads the secret and the warning first.
      this.secretBox.focus();
    }

    hideSecret() {
      this.secretBox.querySelector('[data-field="secret"]').textContent = "";
      this.secretBox.hidden = true;
      document.getElementById("channel-add").focus();
    }

    async edit(channel) {
      const form = this.form(channel);
      const changed = await NH.openDialog({
        title: "Edit the channel " + channel.name,
        fields: form.fields,
        submitLabel: "Save channel",
        submit: () => {
          const body = {};
          if (form.name.control.value !== channel.name) body.name = form.name.control.value;
          if (form.kind.control.value !== channel.kind) body.kind = form.kind.control.value;
          if (form.target.control.value.trim() !== channel.target) body.target = form.target.control.value.trim();
          return api("PATCH", "/api/alert-channels/" + channel.id, body);
        },
      });
      if (!changed) return;
      this.channels.set(changed.id, changed);
      this.render();
      NH.toast("Channel " + changed.name + " saved.", "ok");
    }

    async remove(channel) {
      const gone = await NH.openDialog({
        title: "Delete the channel " + channel.name + "?",
        intro: "Rules that notify it stop sending to it. This cannot be undone.",
        fields: [],
        submitLabel: "Delete channel",
        submit: () => api("DELETE", "/api/alert-channels/" + channel.id),
      });
      if (!gone) return;
      this.channels.delete(channel.id);
      this.tests.delete(channel.id);
      this.render();
      NH.toast("Channel " + channel.name + " deleted.", "ok");
      document.getElementById("channel-add").focus();
    }

    async test(channel, button) {
      NH.busy(button, true);
      try {
        const result = await api("POST", "/api/alert-channels/" + channel.id + "/test");
        this.tests.set(channel.id, result);
        // The test's outcome is kept on the channel as its last error (or its absence).
        const fresh = await api("GET", "/api/alert-channels/" + channel.id).catch(() => null);
        if (fresh) this.channels.set(fresh.id, fresh);
        const text = result.delivered ? "Test delivered to " + channel.name + "." : "Test to " + channel.name + " failed: " + result.error;
        NH.toast(text, result.delivered ? "ok" : "error");
        NH.announce(text);
      } catch (error) {
        NH.apiFailed(error, "Could not test " + channel.name);
      } finally {
        NH.busy(button, false);
        this.render();
      }
    }

    listen() {
      const add = document.getElementById("channel-add");
      add.addEventListener("click", () => this.add());
      this.secretBox.querySelector("#channel-secret-done").addEventListener("click", () => this.hideSecret());
      this.tbody.addEventListener("click", (event) => {
        const button = event.target.closest("button[data-action]");
        if (!button || NH.isBusy(button)) return;
        const channel = this.channels.get(button.closest("tr").dataset.channelId);
        if (!channel) return;
        if (button.dataset.action === "test") this.test(channel, button);
        else if (button.dataset.action === "edit") this.edit(channel);
        else this.remove(channel);
      });
    }
  }

  // --- start ------------------------------------------------------------------------------------

  const panel = document.getElementById("alerts-panel");
  const agentCard = document.getElementById("agent-alerts");
  let open = null;
  if (panel) open = new OpenAlerts(panel);
  else if (agentCard) open = new OpenAlerts(agentCard, { agentId: agentCard.dataset.agentId, showAgent: false });
  if (open) {
    open.listen();
    open.render();
    open.reload();
  }

  let rules = null;
  const rulesForm = document.getElementById("rules-form");
  if (agentCard && rulesForm) {
    rules = new RulesEditor(rulesForm, agentCard.dataset.agentId);
    rules.listen();
    rules.load();
  }

  let channels = null;
  const channelsCard = document.getElementById("channels");
  if (channelsCard) {
    channels = new Channels(channelsCard);
    channels.listen();
    channels.load();
  }

  // For tests and for people poking at the page from the console.
  NH.alerts = { open, rules, channels };
})();
