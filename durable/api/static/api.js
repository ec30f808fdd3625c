// The HTTP API client: JSON requests, the bearer token, and the SSE event stream.
// Everything goes through fetch: EventSource cannot send an Authorization header.

const TOKEN_KEY = "durable.token";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.problems = (body && body.problems) || [];
  }
}

export function getToken() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

function authHeaders(extra) {
  const headers = { ...extra };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

// One pending token prompt shared by every request that got a 401, so that a burst of
// polling requests shows the form once and all of them retry when the token is saved.
let tokenPrompt = null;

function askForToken(message) {
  if (!tokenPrompt) {
    tokenPrompt = new Promise((resolve) => {
      const form = document.getElementById("token-form");
      const input = document.getElementById("token-input");
      document.getElementById("token-error").textContent = message || "";
      form.hidden = false;
      input.focus();
      form.onsubmit = (event) => {
        event.preventDefault();
        localStorage.setItem(TOKEN_KEY, input.value.trim());
        form.hidden = true;
        tokenPrompt = null;
        resolve();
      };
    });
  }
  return tokenPrompt;
}

// fetch with the token; on 401, ask for a token and try again (as often as it takes).
async function authorizedFetch(path, init) {
  for (;;) {
    const response = await fetch(path, { ...init, headers: authHeaders(init.headers) });
    if (response.status !== 401) return response;
    const body = await response.json().catch(() => null);
    const hadToken = Boolean(getToken());
    await askForToken(hadToken ? `Rejected: ${(body && body.error) || "invalid token"}` : "");
  }
}

// A JSON request; resolves to the decoded body, rejects with ApiError on a non-2xx answer.
export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, signal, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await authorizedFetch(path, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: text.slice(0, 200) };
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// Reads a run's events as Server-Sent Events, calling onEvent(event) for each, until the
// server ends the stream (after the run's final event) or `signal` aborts it.
export async function streamEvents(runId, after, onEvent, signal) {
  const path = `/executions/${encodeURIComponent(runId)}/events?after=${after}`;
  const response = await authorizedFetch(path, {
    signal,
    headers: { Accept: "text/event-stream" },
  });
  if (!response.ok || !response.body) {
    throw new ApiError(response.status, await response.json().catch(() => null));
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    // Messages are separated by a blank line; the last piece may still be incomplete.
    const messages = buffer.split(/\r?\n\r?\n/);
    buffer = messages.pop();
    for (const message of messages) {
      const parsed = parseSseMessage(message);
      if (parsed) onEvent(parsed);
    }
  }
}

// One SSE message ("id:", "event:", "data:" lines) to the event object its data carries.
function parseSseMessage(message) {
  const data = [];
  let id = null;
  let type = null;
  for (const line of message.split(/\r?\n/)) {
    if (!line || line.startsWith(":")) continue; // comments are keep-alives
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") data.push(value);
    else if (field === "id") id = value;
    else if (field === "event") type = value;
  }
  if (!data.length) return null;
  const event = JSON.parse(data.join("\n"));
  if (event.seq === undefined && id !== null) event.seq = Number(id);
  if (event.type === undefined && type !== null) event.type = type;
  return event;
}
