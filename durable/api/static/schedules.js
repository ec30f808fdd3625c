// The schedules list (#/schedules): each cron schedule with its next fire time, kept live by
// polling, with pause/resume and "run now" (admin token). Text goes through h() only.

import { api } from "./api.js";
import { formatTime, h } from "./format.js";
import { every, flash, showError } from "./ui.js";

export function renderSchedulesView(view, signal) {
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "runs", "data-testid": "schedules-table" },
    h(
      "thead",
      {},
      h("tr", {}, ...["Schedule", "Workflow", "Cron", "Timezone", "Next run", "Last run", ""].map(
        (t) => h("th", { text: t }),
      )),
    ),
    tbody,
  );
  const empty = h("p", {
    class: "muted",
    "data-testid": "schedules-empty",
    text: "No schedules yet: declare one with @app.schedule, app.add_schedule or `schedule:`.",
  });
  const error = h("div", { class: "error", hidden: true });
  view.append(h("section", { class: "card" }, h("h2", { text: "Schedules" }), error, table, empty));

  async function refresh() {
    const answer = await api("/schedules", { signal });
    tbody.replaceChildren(...answer.schedules.map((s) => scheduleRow(s, refresh, error)));
    empty.hidden = answer.schedules.length > 0;
  }
  every(1000, signal, refresh);
}

function nextRun(s) {
  if (s.paused) return h("span", { class: "badge status-cancelled", text: "paused" });
  if (s.waitingForPrevious) {
    return h("span", { class: "badge status-pending", text: "waiting for the previous run" });
  }
  return h("span", { title: new Date(s.nextRunAt).toISOString(), text: formatTime(s.nextRunAt) });
}

function scheduleRow(s, refresh, error) {
  const act = (what) => async () => {
    try {
      const path = `/schedules/${encodeURIComponent(s.name)}/${what}`;
      const answer = await api(path, { method: "POST" });
      flash(what === "trigger" ? `started ${answer.executionId}` : `${s.name}: ${what}d`);
      error.hidden = true;
      await refresh();
    } catch (e) {
      showError(error, e);
    }
  };
  const toggle = s.paused ? "resume" : "pause";
  const last = s.lastRunId
    ? h("a", { href: `#/runs/${encodeURIComponent(s.lastRunId)}`, text: s.lastRunId })
    : h("span", { class: "muted", text: "—" });
  return h(
    "tr",
    { "data-schedule": s.name, "data-paused": String(s.paused) },
    h("td", { text: s.name }),
    h("td", { text: s.workflow }),
    h("td", {}, h("code", { text: s.cron })),
    h("td", { text: s.timezone }),
    h("td", { "data-testid": "next-run" }, nextRun(s)),
    h("td", {}, last),
    h(
      "td",
      {},
      h("button", { type: "button", "data-testid": `${toggle}-schedule`, text: toggle, onclick: act(toggle) }),
      " ",
      h("button", { type: "button", "data-testid": "trigger-schedule", text: "run now", onclick: act("trigger") }),
    ),
  );
}
