// The step graph: a layered left-to-right layout of a run's steps, drawn as inline SVG.
// Layer = the longest path from a root along `dependencies`, so every edge points right.

import { formatDuration } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 168;
const NODE_H = 46;
const GAP_X = 64;
const GAP_Y = 18;
const PAD = 12;

// Longest-path layering. Unknown dependencies are ignored; a cycle (which a valid
// definition cannot have) is cut where it is found rather than looping forever.
export function layers(steps) {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const layer = new Map();
  const visiting = new Set();
  const depth = (id) => {
    if (layer.has(id)) return layer.get(id);
    if (visiting.has(id)) return 0;
    visiting.add(id);
    const deps = (byId.get(id).dependencies || []).filter((d) => byId.has(d));
    const value = deps.length ? 1 + Math.max(...deps.map(depth)) : 0;
    visiting.delete(id);
    layer.set(id, value);
    return value;
  };
  steps.forEach((s) => depth(s.id));
  return layer;
}

// Node positions: columns by layer; within a column, nodes are ordered by the mean row of
// their dependencies (one barycenter pass), which removes most crossings in small graphs.
export function layout(steps) {
  const layer = layers(steps);
  const columns = [];
  steps.forEach((s) => {
    const n = layer.get(s.id);
    (columns[n] = columns[n] || []).push(s);
  });
  const row = new Map();
  const positions = new Map();
  columns.forEach((column, x) => {
    const score = (s) => {
      const rows = (s.dependencies || []).filter((d) => row.has(d)).map((d) => row.get(d));
      return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : -1;
    };
    const ordered = column
      .map((s, i) => ({ s, i, k: score(s) }))
      .sort((a, b) => a.k - b.k || a.i - b.i);
    ordered.forEach(({ s }, y) => {
      row.set(s.id, y);
      positions.set(s.id, { x: PAD + x * (NODE_W + GAP_X), y: PAD + y * (NODE_H + GAP_Y) });
    });
  });
  const height = Math.max(1, ...columns.map((c) => c.length));
  return {
    positions,
    width: PAD * 2 + columns.length * NODE_W + Math.max(0, columns.length - 1) * GAP_X,
    height: PAD * 2 + height * NODE_H + (height - 1) * GAP_Y,
  };
}

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function truncate(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function edgePath(from, to) {
  const x1 = from.x + NODE_W;
  const y1 = from.y + NODE_H / 2;
  const x2 = to.x;
  const y2 = to.y + NODE_H / 2;
  const bend = (x2 - x1) / 2;
  return `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`;
}

function nodeGroup(step, pos) {
  const status = step.status || "pending";
  const g = el("g", {
    class: `node status-${status}`,
    "data-step-id": step.id,
    "data-status": status,
    transform: `translate(${pos.x},${pos.y})`,
  });
  g.append(el("title", {}, `${step.name || step.id} — ${status}`));
  g.append(el("rect", { width: NODE_W, height: NODE_H, rx: 6, ry: 6 }));
  g.append(el("text", { x: 10, y: 19, class: "node-name" }, truncate(step.name || step.id, 22)));
  const attempts = step.attempts > 1 ? ` · ${step.attempts} attempts` : "";
  const detail = `${status} · ${formatDuration(step.duration)}${attempts}`;
  g.append(el("text", { x: 10, y: 36, class: "node-detail" }, truncate(detail, 28)));
  return g;
}

// The <svg> for a visualize answer's steps.
export function renderGraph(steps) {
  const { positions, width, height } = layout(steps);
  const svg = el("svg", {
    "data-testid": "step-graph",
    class: "step-graph",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": "step graph",
  });
  const defs = el("defs");
  const marker = el("marker", {
    id: "arrow",
    viewBox: "0 0 10 10",
    refX: 10,
    refY: 5,
    markerWidth: 7,
    markerHeight: 7,
    orient: "auto-start-reverse",
  });
  marker.append(el("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }));
  defs.append(marker);
  svg.append(defs);
  const edges = el("g", { class: "edges" });
  for (const step of steps) {
    for (const dep of step.dependencies || []) {
      if (!positions.has(dep)) continue;
      edges.append(
        el("path", {
          d: edgePath(positions.get(dep), positions.get(step.id)),
          class: "edge",
          "data-from": dep,
          "data-to": step.id,
          "marker-end": "url(#arrow)",
        }),
      );
    }
  }
  svg.append(edges);
  for (const step of steps) svg.append(nodeGroup(step, positions.get(step.id)));
  return svg;
}
