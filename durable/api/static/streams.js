// A run's streams on its page (ctx.write_stream / durable.write_stream): one block per key with
// its values as they come (GET /executions/{id}/streams, then each key's JSON pages from the
// last offset seen, on every refresh of the page), and whether it is closed. Hidden while the
// run has written none. Values go in as text: a string as it is, anything else as JSON.

import { api } from "./api.js";
import { h, json } from "./format.js";

const MAX_SHOWN = 500; // values kept on the page per key (the oldest are dropped first)

export function streamsView(path, signal) {
  const list = h("div", { "data-testid": "run-streams" });
  const element = h("section", { class: "card", "data-testid": "streams-box", hidden: true }, h("h2", { text: "Streams" }), list);
  const keys = new Map(); // key -> { after, values (the <pre>), state (the <span>) }

  async function refresh() {
    const answer = await api(`${path}/streams`, { signal });
    element.hidden = answer.streams.length === 0;
    for (const stream of answer.streams) {
      let shown = keys.get(stream.key);
      if (!shown) {
        shown = { after: 0, values: h("pre", { class: "stream-values", "data-testid": "stream-values" }), state: h("span", { class: "muted" }) };
        keys.set(stream.key, shown);
        list.append(
          h("div", { class: "stream", "data-stream": stream.key },
            h("h3", {}, h("code", { text: stream.key }), " ", shown.state),
            shown.values),
        );
      }
      await follow(stream.key, shown);
    }
  }

  async function follow(key, shown) {
    for (;;) {
      const page = await api(`${path}/streams/${encodeURIComponent(key)}?after=${shown.after}&limit=200`, { signal });
      for (const item of page.items) {
        const text = typeof item.value === "string" ? item.value : json(item.value);
        shown.values.append(h("span", { "data-offset": String(item.offset), text: text + "\n" }));
      }
      while (shown.values.childElementCount > MAX_SHOWN) shown.values.firstElementChild.remove();
      shown.after = page.nextAfter;
      shown.state.textContent = page.closed ? `closed, ${shown.after} values` : `${shown.after} values so far`;
      if (page.items.length < 200) return;
    }
  }

  return { element, refresh };
}
