/* The session admin's log: while the run is going, read the lines logged
 * since the last one shown, every two seconds, from the REST API (the admin's
 * own sign-in is accepted there), until the run has ended. */
(function () {
  "use strict";

  function line(entry) {
    const item = document.createElement("li");
    item.dataset.level = entry.level.toLowerCase();
    const time = document.createElement("time");
    time.dateTime = entry.at;
    time.textContent = entry.at;
    const level = document.createElement("b");
    level.textContent = entry.level;
    item.append(time, " ", level, " ", document.createTextNode(entry.message));
    return item;
  }

  async function follow(list) {
    let after = Number(list.dataset.after) || 0;
    for (;;) {
      await new Promise((resolve) => window.setTimeout(resolve, 2000));
      let data;
      try {
        const response = await fetch(list.dataset.url + "?after=" + after + "&limit=1000", {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (!response.ok) return;
        data = (await response.json()).data;
      } catch (error) {
        continue;
      }
      for (const entry of data.lines) {
        list.appendChild(line(entry));
        after = entry.seq;
      }
      if (data.truncated || !data.lines.length) {
        const session = await fetch(list.dataset.url.replace(/\/logs\/?$/, ""), {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        }).then((r) => (r.ok ? r.json() : null), () => null);
        const status = session && session.data && session.data.status;
        if (status && status !== "QUEUED" && status !== "RUNNING") return;
      }
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const list of document.querySelectorAll(".session-log[data-live=true]")) follow(list);
  });
})();
