// The runs list (#/): the start form, filters, and a table of runs kept live by polling.

import { api } from "./api.js";
import { badge, formatDuration, formatTime, h, runDuration } from "./format.js";
import { every, showError } from "./ui.js";

const PAGE_SIZE = 50;
const STATUSES = ["pending", "running", "succeeded", "partial", "failed", "cancelled"];

export function renderRunsView(view, signal) {
  const state = { workflows: [], pages: 1, workflowId: "", status: "", generation: 0 };
  const startForm = buildStartForm(state, signal);
  const filters = buildFilters(state, () => refresh());
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "runs", "data-testid": "runs-table" },
    h(
      "thead",
      {},
      h("tr", {}, ...["Run", "Workflow", "Version", "Status", "Started", "Duration"].map((t) =>
        h("th", { text: t }),
      )),
    ),
    tbody,
  );
  const empty = h("p", { class: "muted", "data-testid": "runs-empty", text: "No runs yet." });
  const more = h("button", {
    type: "button",
    "data-testid": "load-more",
    hidden: true,
    text: "Load more",
    onclick: () => {
      state.pages += 1;
      refresh();
    },
  });
  view.append(
    h("section", { class: "card" }, h("h2", { text: "Start a run" }), startForm.form),
    h("section", { class: "card" }, h("h2", { text: "Runs" }), filters, table, empty, more),
  );

  // Follows the cursor through as many pages as are shown, so "load more" pages stay live
  // too; `generation` drops answers that a newer filter choice made stale.
  async function refresh() {
    const generation = ++state.generation;
    const runs = [];
    let cursor = null;
    for (let page = 0; page < state.pages; page += 1) {
      const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (state.workflowId) query.set("workflowId", state.workflowId);
      if (state.status) query.set("status", state.status);
      if (cursor) query.set("cursor", cursor);
      const answer = await api(`/executions?${query}`, { signal });
      runs.push(...answer.executions);
      cursor = answer.nextCursor;
      if (!cursor) break;
    }
    if (generation !== state.generation) return;
    updateRows(tbody, runs);
    empty.hidden = runs.length > 0;
    more.hidden = !cursor;
  }

  api("/workflows", { signal })
    .then((answer) => {
      state.workflows = answer.workflows;
      startForm.setWorkflows(answer.workflows);
      filters.setWorkflows(answer.workflows);
    })
    .catch((error) => showError(startForm.error, error));
  every(1000, signal, refresh);
}

// Replaces only the rows whose content changed, so that a finished run's row (and a click
// on its link) is not disturbed by the once-a-second refresh.
function updateRows(tbody, runs) {
  const rows = runs.map((run) => {
    const row = runRow(run);
    row.dataset.signature = row.textContent + run.status;
    return row;
  });
  const old = Array.from(tbody.rows);
  const sameOrder =
    old.length === rows.length && old.every((row, i) => row.dataset.runId === rows[i].dataset.runId);
  if (!sameOrder) {
    tbody.replaceChildren(...rows);
    return;
  }
  old.forEach((row, i) => {
    if (row.dataset.signature !== rows[i].dataset.signature) row.replaceWith(rows[i]);
  });
}

function runLink(id) {
  return h("a", { href: `#/runs/${encodeURIComponent(id)}`, text: id });
}

function runRow(run) {
  return h(
    "tr",
    { "data-run-id": run.executionId, "data-status": run.status },
    h("td", {}, runLink(run.executionId)),
    h("td", { text: run.workflowId }),
    h("td", { text: run.version }),
    h("td", {}, badge(run.status)),
    h("td", { text: formatTime(run.startTime) }),
    h("td", { text: formatDuration(runDuration(run)) }),
  );
}

function option(value, label, selected = false) {
  return h("option", { value, text: label, selected });
}

function buildFilters(state, onChange) {
  const workflow = h("select", { "data-testid": "filter-workflow", name: "workflowId" });
  workflow.append(option("", "all workflows"));
  const status = h(
    "select",
    { "data-testid": "filter-status", name: "status" },
    option("", "any status"),
    ...STATUSES.map((s) => option(s, s)),
  );
  const changed = () => {
    state.workflowId = workflow.value;
    state.status = status.value;
    state.pages = 1;
    onChange();
  };
  workflow.addEventListener("change", changed);
  status.addEventListener("change", changed);
  const bar = h(
    "div",
    { class: "filters", "data-testid": "filters" },
    h("label", {}, "Workflow ", workflow),
    h("label", {}, "Status ", status),
  );
  bar.setWorkflows = (workflows) => {
    workflow.replaceChildren(option("", "all workflows"), ...workflows.map((w) => option(w.id, w.id)));
  };
  return bar;
}

function buildStartForm(state, signal) {
  const workflow = h("select", { name: "workflowId", "data-testid": "start-workflow", required: true });
  const version = h("select", { name: "version", "data-testid": "start-version" });
  const context = h("textarea", {
    name: "context",
    rows: 4,
    spellcheck: "false",
    "data-testid": "start-context",
    text: "{}",
  });
  const runId = h("input", {
    name: "executionId",
    placeholder: "optional: generated if empty",
    autocomplete: "off",
    "data-testid": "start-execution-id",
  });
  const error = h("div", { class: "error", "data-testid": "start-error", hidden: true });
  const submit = h("button", { type: "submit", "data-testid": "start-submit", text: "Start" });
  const form = h(
    "form",
    { class: "start-form", "data-testid": "start-form" },
    h("label", {}, "Workflow", workflow),
    h("label", {}, "Version", version),
    h("label", { class: "wide" }, "Context (JSON)", context),
    h("label", {}, "Execution id", runId),
    h("div", { class: "actions" }, submit),
    error,
  );

  const fillVersions = () => {
    const chosen = state.workflows.find((w) => w.id === workflow.value);
    const versions = chosen ? chosen.versions || [chosen.version] : [];
    version.replaceChildren(
      option("", chosen ? `latest (${chosen.version})` : "latest"),
      ...versions.map((v) => option(v, v)),
    );
  };
  workflow.addEventListener("change", fillVersions);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    let input;
    try {
      input = JSON.parse(context.value || "{}");
    } catch (e) {
      showError(error, new Error(`Context is not valid JSON: ${e.message}`));
      return;
    }
    const body = { workflowId: workflow.value, context: input };
    if (version.value) body.version = version.value;
    if (runId.value.trim()) body.executionId = runId.value.trim();
    submit.disabled = true;
    try {
      const answer = await api("/executions/start", { method: "POST", body, signal });
      location.hash = `#/runs/${encodeURIComponent(answer.executionId)}`;
    } catch (e) {
      if (e.name !== "AbortError") showError(error, e);
    } finally {
      submit.disabled = false;
    }
  });

  return {
    form,
    error,
    setWorkflows(workflows) {
      workflow.replaceChildren(...workflows.map((w) => option(w.id, w.name && w.name !== w.id ? `${w.id} — ${w.name}` : w.id)));
      fillVersions();
    },
  };
}
