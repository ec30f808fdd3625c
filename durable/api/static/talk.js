// What a run shows the outside, on its page: the values it set with ctx.set_event (key,
// latest value, the seq of the event that set it, when), from GET /executions/{id}/values.
// Hidden while the run has set none. Every value goes in as text (format.js `h`).

import { api } from "./api.js";
import { formatTime, h, json, jsonCell } from "./format.js";

export function valuesView(path, signal) {
  const body = h("tbody", {});
  const table = h(
    "table",
    { class: "results", "data-testid": "run-values" },
    h("thead", {}, h("tr", {}, ...["Key", "Value", "Seq", "Set at"].map((t) => h("th", { text: t })))),
    body,
  );
  const element = h("section", { class: "card", "data-testid": "values-box", hidden: true }, h("h2", { text: "Values (ctx.set_event)" }), table);
  let shown = "";

  async function refresh() {
    const answer = await api(`${path}/values`, { signal });
    const key = json(answer.entries);
    if (key === shown) return;
    shown = key;
    element.hidden = answer.entries.length === 0;
    body.replaceChildren(
      ...answer.entries.map((entry) =>
        h(
          "tr",
          { "data-key": entry.key },
          h("td", {}, h("code", { text: entry.key })),
          h("td", { "data-testid": "value-cell" }, jsonCell(entry.value)),
          h("td", { text: `#${entry.seq}` }),
          h("td", { text: formatTime(entry.updatedAt) }),
        ),
      ),
    );
  }

  return { element, refresh };
}
