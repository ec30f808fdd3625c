// The conversation of a run's durable agents (docs/agents.md), on the run's page: the user's
// prompts, the model's text and tool calls, the tool results sent back, and the tool calls
// that need a human's approval, in the order they happened, with approve / deny buttons for
// the pending ones. Built from the run's events (a model-request step records the newest
// request as its input and the model's response in its result) and its approvals
// (GET /executions/{id}/approvals). Every value goes in as text (format.js `h`).

import { api } from "./api.js";
import { h, json } from "./format.js";
import { flash } from "./ui.js";

const MODEL_STEP = /^(.+)\.model_request(?:_stream)?(?:\..+)?$/;
const APPROVAL_STEP = /^(.+)\.approval_request$/;

export function conversationView(path, signal) {
  const list = h("ol", { class: "conversation", "data-testid": "conversation" });
  const element = h("section", { class: "card", "data-testid": "conversation-box", hidden: true }, h("h2", { text: "Conversation" }), list);
  const events = [];
  const reasons = new Map(); // tool call key -> its reason field, kept across renders
  let lastSeq = 0;
  let shown = "";

  async function decide(approval, approved, button) {
    const reason = reasons.get(approval.signal).value.trim();
    button.disabled = true;
    try {
      const url = `${path}/approvals/${encodeURIComponent(approval.toolCallId)}`;
      await api(url, { method: "POST", body: { approved, reason: reason || null }, signal });
      flash(`Tool call ${approval.toolCallId} ${approved ? "approved" : "denied"}.`);
      await refresh();
    } catch (error) {
      flash(error.message, "error");
      button.disabled = false;
    }
  }

  async function refresh() {
    const [answer, approvals] = await Promise.all([
      api(`${path}/events?after=${lastSeq}`, { signal }),
      api(`${path}/approvals`, { signal }),
    ]);
    for (const event of answer.events) {
      if (event.seq > lastSeq) {
        events.push(event);
        lastSeq = event.seq;
      }
    }
    const items = conversation(events, approvals.approvals);
    const key = json([lastSeq, approvals.approvals]);
    if (key === shown) return;
    shown = key;
    element.hidden = items.length === 0;
    list.replaceChildren(...items.map((item) => render(item, reasons, decide)));
  }

  return { element, refresh };
}

// The conversation's items, in log order.
function conversation(events, approvals) {
  const names = new Map(); // step position -> name
  const items = [];
  for (const event of events) {
    const f = event.fields || {};
    if (event.type === "StepStarted") {
      const first = !names.has(f.pos);
      names.set(f.pos, f.name);
      const model = MODEL_STEP.exec(f.name || "");
      const input = stepInput(f.input);
      if (model && first && input && input.request) items.push(...requestItems(model[1], input.request));
    } else if (event.type === "StepCompleted") {
      const name = names.get(f.pos) || "";
      const model = MODEL_STEP.exec(name);
      const asked = APPROVAL_STEP.exec(name);
      if (model) items.push(...responseItems(model[1], responseOf(f.result)));
      else if (asked) {
        for (const approval of approvals.filter((a) => a.position === f.pos)) {
          items.push({ role: "approval", agent: asked[1], approval });
        }
      }
    }
  }
  return items;
}

// A step's input is recorded as [args, kwargs]; an agent step's is its one argument.
function stepInput(input) {
  return Array.isArray(input) && Array.isArray(input[0]) ? input[0][0] : null;
}

function requestItems(agent, request) {
  const items = [];
  for (const part of request.parts || []) {
    if (part.part_kind === "user-prompt") {
      items.push({ role: "user", agent, label: "User", text: content(part.content) });
    } else if (part.part_kind === "tool-return") {
      const denied = part.outcome === "denied";
      items.push({
        role: "tool-return",
        agent,
        label: `${denied ? "Denied" : "Result of"} ${part.tool_name} (${part.tool_call_id})`,
        text: content(part.content),
      });
    } else if (part.part_kind === "retry-prompt") {
      items.push({ role: "retry", agent, label: `Retry ${part.tool_name || ""}`.trim(), text: content(part.content) });
    }
  }
  return items;
}

function responseItems(agent, response) {
  if (!response) return [];
  const items = [];
  for (const part of response.parts || []) {
    if (part.part_kind === "text") {
      items.push({ role: "model", agent, label: agent, text: content(part.content) });
    } else if (part.part_kind === "tool-call") {
      items.push({
        role: "tool-call",
        agent,
        label: `${agent} calls ${part.tool_name} (${part.tool_call_id})`,
        text: content(part.args),
      });
    } else if (part.part_kind === "thinking") {
      items.push({ role: "thinking", agent, label: `${agent} thinks`, text: content(part.content) });
    }
  }
  return items;
}

// The ModelResponse in a model step's result: {usage, model_name, response}, the response
// being Pydantic AI's dump (or, streamed, an object carrying it).
function responseOf(result) {
  const payload = result && result.response;
  if (!payload || typeof payload !== "object") return null;
  if (payload.kind === "response") return payload;
  return Object.values(payload).find((v) => v && typeof v === "object" && v.kind === "response") || null;
}

function content(value) {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map((v) => (typeof v === "string" ? v : json(v))).join("\n");
  return json(value, 2);
}

function render(item, reasons, decide) {
  if (item.role === "approval") return renderApproval(item.approval, reasons, decide);
  return h(
    "li",
    { class: `message ${item.role}`, "data-role": item.role },
    h("div", { class: "who", text: item.label }),
    h("pre", { class: "said", text: item.text }),
  );
}

function renderApproval(approval, reasons, decide) {
  const status = approval.status;
  const node = h(
    "li",
    { class: `message approval ${status}`, "data-role": "approval", "data-tool-call-id": approval.toolCallId, "data-status": status },
    h("div", { class: "who", text: `Approval ${status}: ${approval.toolName} (${approval.toolCallId})` }),
    h("pre", { class: "said", text: content(approval.args) }),
  );
  if (approval.reason) node.append(h("div", { class: "reason", "data-testid": "approval-reason-shown", text: `Reason: ${approval.reason}` }));
  if (status !== "pending") return node;
  if (!reasons.has(approval.signal)) {
    reasons.set(approval.signal, h("input", { placeholder: "reason (told to the model when denied)", autocomplete: "off", "data-testid": "approval-reason" }));
  }
  const approve = h("button", { type: "button", "data-testid": "approve-button", text: "Approve" });
  const deny = h("button", { type: "button", class: "danger", "data-testid": "deny-button", text: "Deny" });
  approve.addEventListener("click", () => decide(approval, true, approve));
  deny.addEventListener("click", () => decide(approval, false, deny));
  node.append(h("div", { class: "decide" }, reasons.get(approval.signal), approve, deny));
  return node;
}
