// A run's page (#/runs/<id>): header, step graph, step results, event timeline, actions.
// The detail and the graph are polled every second while the run is unfinished; the
// timeline is fed by the SSE stream (falling back to polling if the stream fails).

import { api, streamEvents } from "./api.js";
import { conversationView } from "./conversation.js";
import { externalView } from "./external.js";
import { badge, formatDuration, formatTime, h, isFinished, json, jsonCell, runDuration } from "./format.js";
import { renderGraph } from "./graph.js";
import { historiesView } from "./histories.js";
import { queueHref } from "./queues.js";
import { streamsView } from "./streams.js";
import { valuesView } from "./talk.js";
import { updatesView } from "./updates.js";
import { stepUsageCell, usageSummary } from "./usage.js";
import { every, flash, showError } from "./ui.js";

export function renderRunView(view, runId, signal) {
  const path = `/executions/${encodeURIComponent(runId)}`;
  const header = h("section", { class: "card run-header", "data-testid": "run-header" });
  const graph = h("div", { class: "graph-box", "data-testid": "graph-box" });
  const results = h("div", { "data-testid": "step-results-box" });
  const timeline = new Timeline();
  const actions = buildActions(path, signal);
  const conversation = conversationView(path, signal);
  const histories = historiesView(path, signal);
  const values = valuesView(path, signal);
  const streams = streamsView(path, signal);
  const external = externalView(path, signal);
  const updates = updatesView(path, signal);
  view.append(
    h("p", {}, h("a", { href: "#/", text: "← all runs" })),
    header,
    actions.element,
    h("section", { class: "card" }, h("h2", { text: "Steps" }), graph, results),
    conversation.element,
    histories.element,
    values.element,
    streams.element,
    external.element,
    updates.element,
    h("section", { class: "card" }, h("h2", { text: "Events" }), timeline.element),
  );

  let streaming = false; // the SSE stream is feeding the timeline
  let streamFailed = false;

  async function refresh() {
    const [run, visual] = await Promise.all([
      api(path, { signal }),
      api(`${path}/visualize`, { signal }),
    ]);
    renderHeader(header, run);
    graph.replaceChildren(visual.steps.length ? renderGraph(visual.steps) : h("p", { class: "muted", text: "No steps yet." }));
    results.replaceChildren(resultsTable(run.stepResults || {}));
    actions.update(run);
    await conversation.refresh();
    await histories.refresh(run);
    await Promise.all([values.refresh(), streams.refresh(), external.refresh(), updates.refresh()]);
    const finished = isFinished(run.status);
    if (!streaming && (streamFailed || finished || timeline.lastSeq === 0)) {
      // The JSON list: the first load, after a finished run, or when the stream is unavailable.
      const answer = await api(`${path}/events`, { signal });
      timeline.addAll(answer.events);
    }
    if (!finished && !streaming && !streamFailed) startStream();
    return !finished;
  }

  function startStream() {
    streaming = true;
    streamEvents(runId, timeline.lastSeq, (event) => timeline.add(event), signal)
      .catch((error) => {
        if (error.name === "AbortError") return;
        streamFailed = true; // keep the page live by polling the JSON list instead
        console.warn("event stream failed, polling instead:", error);
      })
      .finally(() => {
        streaming = false;
      });
  }

  every(1000, signal, async () => {
    try {
      return await refresh();
    } catch (error) {
      if (error.status === 404) {
        header.replaceChildren(h("h1", { text: runId }), h("p", { class: "error", "data-testid": "run-missing", text: error.message }));
        return false;
      }
      throw error;
    }
  });
}

function renderHeader(header, run) {
  const rows = [
    ["Workflow", `${run.workflowId}@${run.version}`],
    ["Started", formatTime(run.startTime)],
    ["Ended", formatTime(run.endTime)],
    ["Duration", formatDuration(runDuration(run))],
  ];
  const children = [
    h("h1", {}, h("span", { "data-testid": "run-id", text: run.executionId }), " ", badge(run.status)),
    h("dl", { class: "facts" }, ...rows.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })])),
    queueFacts(run.queue),
    usageSummary(run),
  ].filter(Boolean);
  if (run.error) {
    children.push(
      h("div", { class: "run-error", "data-testid": "run-error" },
        h("strong", { text: run.error.type || "Error" }), ": ", run.error.message || ""),
    );
  }
  header.dataset.status = run.status;
  header.replaceChildren(...children);
}

// A queued run: its queue (linked to the queue's page), priority, partition and dedupe keys,
// when it was admitted, and while it waits, why and its place ("queued: emails is at its
// limit 10; 3 runs ahead"). Nothing for a run started outside a queue.
function queueFacts(queue) {
  if (!queue) return null;
  const facts = [["Queue", h("a", { href: queueHref(queue.name), "data-testid": "run-queue", text: queue.name })]];
  facts.push(["Priority", h("span", { "data-testid": "run-priority", text: String(queue.priority) })]);
  if (queue.partitionKey !== null) {
    facts.push(["Partition", h("code", { "data-testid": "run-partition", text: queue.partitionKey })]);
  }
  if (queue.dedupeKey !== null) {
    facts.push(["Dedupe key", h("code", { "data-testid": "run-dedupe", text: queue.dedupeKey })]);
  }
  if (queue.admittedAt !== null) facts.push(["Admitted", formatTime(queue.admittedAt)]);
  return h(
    "div",
    { class: "queue-facts", "data-testid": "run-queue-facts" },
    h("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)])),
    queue.whyWaiting
      ? h("p", { class: "queued", "data-testid": "run-queued", text: queue.whyWaiting })
      : null,
  );
}

function resultsTable(stepResults) {
  const steps = Object.values(stepResults);
  if (!steps.length) return h("p", { class: "muted", text: "No step results yet." });
  const head = ["Step", "Status", "Attempts", "Duration", "Usage", "Result", "Error"];
  return h(
    "table",
    { class: "results", "data-testid": "step-results" },
    h("thead", {}, h("tr", {}, ...head.map((t) => h("th", { text: t })))),
    h(
      "tbody",
      {},
      ...steps.map((step) =>
        h(
          "tr",
          { "data-step-id": step.stepId, "data-status": step.status },
          h("td", { text: step.stepId }),
          h("td", {}, badge(step.status)),
          h("td", { text: step.attempts ?? "" }),
          h("td", { text: formatDuration(step.duration) }),
          stepUsageCell(step),
          h("td", {}, jsonCell(step.result)),
          h("td", { class: "error-cell" }, step.error ? jsonCell(step.error) : ""),
        ),
      ),
    ),
  );
}

// The event timeline; events are keyed by seq, so the JSON list and the stream can overlap.
class Timeline {
  constructor() {
    this.lastSeq = 0;
    this.list = h("ol", { class: "timeline", "data-testid": "timeline" });
    this.element = this.list;
  }

  addAll(events) {
    for (const event of events) this.add(event);
  }

  add(event) {
    if (event.seq <= this.lastSeq) return;
    this.lastSeq = event.seq;
    const fields = event.fields && Object.keys(event.fields).length ? json(event.fields) : "";
    this.list.append(
      h(
        "li",
        { "data-seq": event.seq, "data-type": event.type },
        h("span", { class: "seq", text: `#${event.seq}` }),
        h("span", { class: "at", text: formatTime(event.at) }),
        h("span", { class: "type", text: event.type }),
        h("code", { class: "fields", title: fields, text: fields.length > 160 ? `${fields.slice(0, 159)}…` : fields }),
      ),
    );
  }
}

function buildActions(path, signal) {
  const cancel = h("button", {
    type: "button",
    class: "danger",
    "data-testid": "cancel-button",
    text: "Cancel run",
  });
  cancel.addEventListener("click", async () => {
    if (!confirm("Cancel this run?")) return;
    cancel.disabled = true;
    try {
      await api(`${path}/cancel`, { method: "POST", body: { reason: "cancelled from the dashboard" }, signal });
      flash("Cancellation requested.");
    } catch (error) {
      flash(error.message, "error");
      cancel.disabled = false;
    }
  });

  const name = h("input", { name: "name", placeholder: "signal name", required: true, autocomplete: "off", "data-testid": "signal-name" });
  const payload = h("textarea", { name: "payload", rows: 2, spellcheck: "false", "data-testid": "signal-payload", text: "null" });
  const error = h("div", { class: "error", "data-testid": "signal-error", hidden: true });
  const form = h(
    "form",
    { class: "signal-form", "data-testid": "signal-form" },
    h("label", {}, "Signal", name),
    h("label", { class: "wide" }, "Payload (JSON)", payload),
    h("div", { class: "actions" }, h("button", { type: "submit", "data-testid": "signal-submit", text: "Send signal" })),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    let body;
    try {
      body = JSON.parse(payload.value || "null");
    } catch (e) {
      showError(error, new Error(`Payload is not valid JSON: ${e.message}`));
      return;
    }
    try {
      await api(`${path}/signals/${encodeURIComponent(name.value.trim())}`, { method: "POST", body, signal });
      flash(`Signal "${name.value.trim()}" sent.`);
    } catch (e) {
      showError(error, e);
    }
  });

  const element = h("section", { class: "card actions-bar", "data-testid": "run-actions" }, cancel, form);
  return {
    element,
    // Actions only make sense on an unfinished run.
    update(run) {
      const finished = isFinished(run.status);
      element.hidden = finished;
      if (finished) cancel.disabled = true;
    },
  };
}
