// The queues list (#/queues): each declared queue with its limits, how many runs wait and
// run, the admissions inside its rate window, how long its oldest run has waited, and why its
// runs wait; and a queue's page (#/queues/<name>): the same, with the runs holding its slots
// and those waiting, in the order they come, each linked to its page. Kept live by polling;
// read-only. Text goes through h() only (queue names, workflow names and partition keys are
// any printable text, markup characters included).

import { api } from "./api.js";
import { badge, formatDuration, formatTime, h } from "./format.js";
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

// How long the oldest waiting run has waited.
function oldest(q) {
  if (q.oldestWaitingAt === null || q.oldestWaitingAt === undefined) return limit(null);
  return age(q.oldestWaitingAt);
}

// The cells of a queue's row after its name (the list's rows and the queue's page).
function queueCells(q) {
  const cell = (testid, ...content) => h("td", { "data-testid": testid }, ...content);
  return [
    cell("concurrency", limit(q.concurrency)),
    cell("worker-concurrency", limit(q.workerConcurrency)),
    cell("partition-concurrency", limit(q.partitionConcurrency)),
    cell("rate-limit", rate(q)),
    cell("waiting", String(q.waiting)),
    cell("running", String(q.running)),
    cell("admitted-recently", String(q.admittedRecently)),
    cell("oldest-waiting", oldest(q)),
    cell("why-waiting", q.whyWaiting ? q.whyWaiting : h("span", { class: "muted", text: "—" })),
  ];
}

function queueRow(q) {
  const name = h("a", { href: queueHref(q.name) }, h("strong", { text: q.name }));
  return h("tr", { "data-queue": q.name }, h("td", { "data-testid": "queue-name" }, name), ...queueCells(q));
}

export function queueHref(name) {
  return `#/queues/${encodeURIComponent(name)}`;
}

// The age of an epoch-ms instant by this browser's clock, the instant (UTC) in the title.
function age(at) {
  return h("span", { title: new Date(at).toISOString(), text: formatDuration(Math.max(0, Date.now() - at)) });
}

export function renderQueueView(view, name, signal) {
  const head = h("section", { class: "card", "data-testid": "queue-header" });
  const admitted = h("section", { class: "card", "data-testid": "queue-admitted" });
  const waiting = h("section", { class: "card", "data-testid": "queue-waiting" });
  view.append(h("p", {}, h("a", { href: "#/queues", text: "← all queues" })), head, admitted, waiting);
  const path = `/queues/${encodeURIComponent(name)}`;

  async function refresh() {
    const q = await api(path, { signal });
    const table = h(
      "table",
      { class: "runs" },
      h("thead", {}, h("tr", {}, ...COLUMNS.slice(1).map((t) => h("th", { text: t })))),
      h("tbody", {}, h("tr", { "data-queue": q.name }, ...queueCells(q))),
    );
    head.replaceChildren(h("h1", {}, h("span", { "data-testid": "queue-title", text: q.name })), table);
    admitted.replaceChildren(
      h("h2", { text: `Holding a slot (${q.running})` }),
      ...runsTable(q.admittedRuns, q.running, false),
    );
    waiting.replaceChildren(
      h("h2", { text: `Waiting (${q.waiting}), by priority, then age` }),
      ...runsTable(q.waitingRuns, q.waiting, true),
    );
  }
  every(1000, signal, async () => {
    try {
      await refresh();
    } catch (error) {
      if (error.status !== 404) throw error;
      head.replaceChildren(h("h1", { text: name }), h("p", { class: "error", "data-testid": "queue-missing", text: error.message }));
      return false;
    }
  });
}

// The queue's admitted or waiting runs (a list of nodes); `total` counts them all (the list
// stops at a limit).
function runsTable(runs, total, waiting) {
  if (!runs.length) return [h("p", { class: "muted", text: waiting ? "No run waits." : "No run holds a slot." })];
  const head = waiting
    ? ["#", "Run", "Workflow", "Status", "Priority", "Partition", "Waiting for", "Not before"]
    : ["Run", "Workflow", "Status", "Priority", "Partition", "Admitted"];
  const rows = runs.map((r, i) => {
    const cells = [
      h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(r.executionId)}`, text: r.executionId })),
      h("td", { text: r.workflowId }),
      h("td", {}, badge(r.status)),
      h("td", { text: String(r.priority) }),
      h("td", {}, r.partitionKey === null ? h("span", { class: "muted", text: "—" }) : h("code", { text: r.partitionKey })),
    ];
    if (waiting) {
      const later = r.readyAt !== null && r.readyAt > Date.now();
      cells.unshift(h("td", { text: String(i + 1) }));
      cells.push(h("td", {}, age(r.startTime)));
      cells.push(h("td", { text: later ? formatTime(r.readyAt) : "—" }));
    } else {
      cells.push(h("td", { title: new Date(r.admittedAt).toISOString(), text: formatTime(r.admittedAt) }));
    }
    return h("tr", { "data-run-id": r.executionId }, ...cells);
  });
  const table = h(
    "table",
    { class: "runs", "data-testid": waiting ? "waiting-runs" : "admitted-runs" },
    h("thead", {}, h("tr", {}, ...head.map((t) => h("th", { text: t })))),
    h("tbody", {}, ...rows),
  );
  const more = total > runs.length ? h("p", { class: "muted", text: `The first ${runs.length} of ${total}.` }) : null;
  return [table, more].filter(Boolean);
}
