// A run's external waits on its page (ctx.wait_external): position, name, status, deadline and
// when it was settled, from GET /executions/{id}/external. Never a token: the API does not
// show them (they complete the wait). Hidden while the run has opened none.

import { api } from "./api.js";
import { formatTime, h, json } from "./format.js";

const COLUMNS = ["Position", "Name", "Status", "Deadline", "Opened", "Settled"];

export function externalView(path, signal) {
  const body = h("tbody", {});
  const element = h(
    "section",
    { class: "card", "data-testid": "external-box", hidden: true },
    h("h2", { text: "External waits" }),
    h("table", { class: "results", "data-testid": "run-external" },
      h("thead", {}, h("tr", {}, ...COLUMNS.map((name) => h("th", { text: name })))), body),
  );
  let shown = "";

  async function refresh() {
    const answer = await api(`${path}/external`, { signal });
    const waits = answer.externalWaits;
    const key = json(waits);
    if (key === shown) return;
    shown = key;
    element.hidden = waits.length === 0;
    body.replaceChildren(
      ...waits.map((wait) =>
        h("tr", { "data-position": String(wait.position) },
          h("td", { text: String(wait.position) }),
          h("td", {}, h("code", { text: wait.name })),
          h("td", { "data-testid": "external-status", text: wait.status }),
          h("td", { text: wait.deadline === null ? "none" : formatTime(wait.deadline) }),
          h("td", { text: formatTime(wait.createdAt) }),
          h("td", { text: wait.settledAt === null ? "—" : formatTime(wait.settledAt) }),
        ),
      ),
    );
  }

  return { element, refresh };
}
