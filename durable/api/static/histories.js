// A continued run's chain of histories (ctx.continue_as_new()), on its page: one row per
// history, where its events are, and whether they are still stored. Hidden for a run that
// never continued; fetched again only when the run moves to a new history.

import { api } from "./api.js";
import { formatTime, h } from "./format.js";

const COLUMNS = ["Generation", "Events", "Started", "Ended", "Events kept"];

export function historiesView(path, signal) {
  const element = h("section", { class: "card", "data-testid": "run-histories", hidden: true });
  let shown = 0;

  async function refresh(run) {
    if (!run.generation || run.generation === shown) return;
    const answer = await api(`${path}/histories`, { signal });
    shown = run.generation;
    element.hidden = false;
    const times = run.generation === 1 ? "once" : `${run.generation} times`;
    element.replaceChildren(
      h("h2", { text: "Histories" }),
      h("p", {
        class: "muted",
        "data-testid": "run-generation",
        text: `Continued as new ${times}: generation ${run.generation}, from event ${run.historyStart}.`,
      }),
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ...COLUMNS.map((name) => h("th", { text: name })))),
        h("tbody", {}, ...answer.histories.map(historyRow)),
      ),
    );
  }

  return { element, refresh };
}

function historyRow(history) {
  const span = `${history.firstEvent}–${history.lastEvent === null ? "" : history.lastEvent}`;
  return h(
    "tr",
    { "data-testid": "history-row" },
    h("td", { text: String(history.generation) }),
    h("td", { text: span }),
    h("td", { text: formatTime(history.startTime) }),
    h("td", { text: history.endTime === null ? "current" : formatTime(history.endTime) }),
    h("td", { text: history.retained ? "yes" : "deleted" }),
  );
}
