// The queues list (#/queues): each declared queue with its limits, how many runs wait and
// run, the admissions inside its rate window, how long its oldest run has waited, and why its
// runs wait; kept live by polling. Read-only. Text goes through h() only (queue names are
// any printable text, markup characters included).

import { api } from "./api.js";
import { formatDuration, h } from "./format.js";
import { every } from "./ui.js";

const COLUMNS = [
  "Queue",
  "Concurrency",
  "Per worker",
  "Per partition",
  "Rate limit",
  "Waiting",
  "Running",
  "Admitted recently",
  "Oldest waiting",
  "Why runs wait",
];

export function renderQueuesView(view, signal) {
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "runs", "data-testid": "queues-table" },
    h("thead", {}, h("tr", {}, ...COLUMNS.map((t) => h("th", { text: t })))),
    tbody,
  );
  const empty = h("p", {
    class: "muted",
    "data-testid": "queues-empty",
    text: "No queues yet: declare one with app.queue(name, concurrency=...).",
  });
  view.append(h("section", { class: "card" }, h("h2", { text: "Queues" }), table, empty));

  async function refresh() {
    const answer = await api("/queues", { signal });
    tbody.replaceChildren(...answer.queues.map(queueRow));
    empty.hidden = answer.queues.length > 0;
  }
  every(1000, signal, refresh);
}

// A limit, or a muted dash for none.
function limit(value) {
  return value === null || value === undefined
    ? h("span", { class: "muted", title: "no limit", text: "—" })
    : String(value);
}

function rate(q) {
  if (q.rateLimit === null || q.rateLimit === undefined) return limit(null);
  // In seconds, as the queue was declared (rate_limit=(100, 60.0)) and as the CLI says it.
  return `${q.rateLimit} per ${q.ratePeriodMs / 1000} s`;
}

// How long the oldest waiting run has waited (by this browser's clock), its creation time in
// the title.
function oldest(q) {
  if (q.oldestWaitingAt === null || q.oldestWaitingAt === undefined) return limit(null);
  return h("span", {
    title: new Date(q.oldestWaitingAt).toISOString(),
    text: formatDuration(Math.max(0, Date.now() - q.oldestWaitingAt)),
  });
}

function queueRow(q) {
  const cell = (testid, ...content) => h("td", { "data-testid": testid }, ...content);
  return h(
    "tr",
    { "data-queue": q.name },
    cell("queue-name", h("strong", { text: q.name })),
    cell("concurrency", limit(q.concurrency)),
    cell("worker-concurrency", limit(q.workerConcurrency)),
    cell("partition-concurrency", limit(q.partitionConcurrency)),
    cell("rate-limit", rate(q)),
    cell("waiting", String(q.waiting)),
    cell("running", String(q.running)),
    cell("admitted-recently", String(q.admittedRecently)),
    cell("oldest-waiting", oldest(q)),
    cell("why-waiting", q.whyWaiting ? q.whyWaiting : h("span", { class: "muted", text: "—" })),
  );
}
