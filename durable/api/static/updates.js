// A run's updates on its page (ctx.on_update / app.update): each request with its name,
// arguments, status (requested, accepted, completed, failed, rejected) and its answer or error,
// from GET /executions/{id}/updates. Hidden while the run has been sent none. Text only.

import { api } from "./api.js";
import { formatTime, h, json, jsonCell } from "./format.js";

const COLUMNS = ["Update", "Name", "Arguments", "Status", "Answer", "Sent", "Last change"];

export function updatesView(path, signal) {
  const body = h("tbody", {});
  const element = h(
    "section",
    { class: "card", "data-testid": "updates-box", hidden: true },
    h("h2", { text: "Updates" }),
    h("table", { class: "results", "data-testid": "run-updates" },
      h("thead", {}, h("tr", {}, ...COLUMNS.map((name) => h("th", { text: name })))), body),
  );
  let shown = "";

  async function refresh() {
    const answer = await api(`${path}/updates`, { signal });
    const key = json(answer.updates);
    if (key === shown) return;
    shown = key;
    element.hidden = answer.updates.length === 0;
    body.replaceChildren(
      ...answer.updates.map((update) =>
        h("tr", { "data-update": update.updateId },
          h("td", {}, h("code", { text: update.updateId })),
          h("td", {}, h("code", { text: update.name })),
          h("td", {}, jsonCell(update.args)),
          h("td", { "data-testid": "update-status", text: update.status }),
          h("td", { "data-testid": "update-answer" },
            update.error ? `${update.error.type}: ${update.error.message}` : jsonCell(update.result)),
          h("td", { text: formatTime(update.createdAt) }),
          h("td", { text: formatTime(update.updatedAt) }),
        ),
      ),
    );
  }

  return { element, refresh };
}
