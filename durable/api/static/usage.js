// What a run cost, on its page: the token usage of its model requests (durable agents) and
// the CPU time and peak memory of its script steps, from the execution detail's `usage` and
// `resources` fields (the run's totals, and each step entry's). Text only, through `h`.

import { h } from "./format.js";

const SHOWN = new Set(["requests", "input_tokens", "output_tokens"]);

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

// Counters beyond requests/input/output (cache reads, audio...), as ", name value".
function extras(usage) {
  return Object.entries(usage)
    .filter(([key]) => !SHOWN.has(key))
    .map(([key, value]) => `, ${key} ${value}`)
    .join("");
}

// "15 tokens (12 in, 3 out)"
export function tokensText(usage) {
  const input = usage.input_tokens || 0;
  const output = usage.output_tokens || 0;
  return `${input + output} tokens (${input} in, ${output} out)${extras(usage)}`;
}

// "CPU 0.21 s · peak 10.6 MiB"
export function resourcesText(resources) {
  const cpu = Number(resources.cpuSeconds).toFixed(2);
  const peak = (Number(resources.maxRssKb) / 1024).toFixed(1);
  return `CPU ${cpu} s · peak ${peak} MiB`;
}

// The run's totals, under its header; null when it made no model request and ran no script.
export function usageSummary(run) {
  const rows = [];
  if (run.usage) {
    const requests = plural(run.usage.requests || 0, "model request");
    rows.push(["Tokens", `${requests} · ${tokensText(run.usage)}`, "run-usage"]);
  }
  if (run.resources) rows.push(["Scripts", resourcesText(run.resources), "run-resources"]);
  if (!rows.length) return null;
  return h(
    "dl",
    { class: "facts usage-facts", "data-testid": "usage-summary" },
    ...rows.flatMap(([label, text, id]) => [h("dt", { text: label }), h("dd", { "data-testid": id, text })]),
  );
}

// A step entry's cost, as a cell of the step results table (empty for most steps).
export function stepUsageCell(step) {
  let text = "";
  if (step.usage) text = tokensText(step.usage);
  else if (step.resources) text = resourcesText(step.resources);
  return h("td", { class: "usage-cell", "data-testid": "step-usage", text });
}
