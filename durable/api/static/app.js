// The dashboard: a hash router over five views, the runs list (#/), a run (#/runs/<id>), the
// schedules (#/schedules), the queues (#/queues) and a queue (#/queues/<name>).
// Each view gets an AbortController; leaving the view aborts its timers, requests and stream.

import { renderRunsView } from "./runs.js";
import { renderRunView } from "./run.js";
import { renderQueuesView, renderQueueView } from "./queues.js";
import { renderSchedulesView } from "./schedules.js";

let current = null;

function route() {
  if (current) current.abort();
  current = new AbortController();
  const view = document.getElementById("view");
  view.replaceChildren();
  // The id is decoded after matching: run ids may contain "/" (links encode it).
  const match = location.hash.match(/^#\/runs\/(.+)$/);
  const queue = location.hash.match(/^#\/queues\/(.+)$/);
  if (match) renderRunView(view, decodeURIComponent(match[1]), current.signal);
  else if (queue) renderQueueView(view, decodeURIComponent(queue[1]), current.signal);
  else if (location.hash === "#/schedules") renderSchedulesView(view, current.signal);
  else if (location.hash === "#/queues") renderQueuesView(view, current.signal);
  else renderRunsView(view, current.signal);
}

window.addEventListener("hashchange", route);
route();
