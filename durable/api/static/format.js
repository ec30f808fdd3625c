// Small DOM and formatting helpers. `h` only ever sets text through textContent, so
// values from the API (run results are untrusted) can never become markup.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Milliseconds to "850 ms", "2.31 s", "4m 05s", "1h 02m".
export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(2)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

export function formatTime(ms) {
  if (ms === null || ms === undefined) return "—";
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return `${date} ${time}.${pad(d.getMilliseconds(), 3)}`;
}

// A run's duration: the server's, else the time elapsed so far for an unfinished run.
export function runDuration(run) {
  if (run.duration !== null && run.duration !== undefined) return run.duration;
  if (run.startTime && !run.endTime && !isFinished(run.status)) {
    return Date.now() - run.startTime;
  }
  return null;
}

export const FINISHED = new Set(["succeeded", "partial", "failed", "cancelled"]);

export function isFinished(status) {
  return FINISHED.has(status);
}

export function json(value, indent) {
  try {
    const text = JSON.stringify(value, null, indent);
    return text === undefined ? "" : text;
  } catch {
    return String(value);
  }
}

// A one-line preview of a JSON value, with the whole value behind a disclosure when long.
export function jsonCell(value, max = 80) {
  if (value === undefined || value === null) return h("span", { class: "muted", text: "—" });
  const line = json(value);
  if (line.length <= max) return h("code", { text: line });
  return h(
    "details",
    {},
    h("summary", {}, h("code", { text: `${line.slice(0, max - 1)}…` })),
    h("pre", { text: json(value, 2) }),
  );
}

export function badge(status) {
  return h("span", {
    class: `badge status-${status}`,
    "data-status": status,
    "data-testid": "status-badge",
    text: status,
  });
}
