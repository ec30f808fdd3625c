// The dashboard: a hash router over two views, the runs list (#/) and a run (#/runs/<id>).
// Each view gets an AbortController; leaving the view aborts its timers, requests and stream.

import { renderRunsView } from "./runs.js";
import { renderRunView } from "./run.js";

let current = null;

function route() {
  if (current) current.abort();
  current = new AbortController();
  const view = document.getElementById("view");
  view.replaceChildren();
  // The id is decoded after matching: run ids may contain "/" (links encode it).
  const match = location.hash.match(/^#\/runs\/(.+)$/);
  if (match) renderRunView(view, decodeURIComponent(match[1]), current.signal);
  else renderRunsView(view, current.signal);
}

window.addEventListener("hashchange", route);
route();
