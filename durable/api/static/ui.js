// Shared view helpers: flash messages, polling loops, error boxes.

// A transient message at the top of the page (action results, errors).
export function flash(message, kind = "info") {
  const box = document.getElementById("flash");
  box.textContent = message;
  box.className = `flash ${kind}`;
  box.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => (box.hidden = true), kind === "error" ? 8000 : 4000);
}

// Runs `tick` now and then every `ms` until it returns false or `signal` aborts. The next
// tick is scheduled only after the previous one finished, so slow answers never pile up.
export function every(ms, signal, tick) {
  let timer = null;
  const loop = async () => {
    if (signal.aborted) return;
    let again = true;
    try {
      again = (await tick()) !== false;
      setConnection(true);
    } catch (error) {
      if (signal.aborted || error.name === "AbortError") return;
      setConnection(false, error);
    }
    if (again && !signal.aborted) timer = setTimeout(loop, ms);
  };
  signal.addEventListener("abort", () => clearTimeout(timer));
  loop();
}

function setConnection(ok, error) {
  const conn = document.getElementById("conn");
  conn.textContent = ok ? "" : `⚠ ${error.message}`;
  conn.className = ok ? "conn" : "conn bad";
}

// Renders an API error and its problems (path: message) into a box.
export function showError(box, error) {
  box.replaceChildren(error.message);
  for (const problem of error.problems || []) {
    const p = document.createElement("div");
    p.textContent = `${problem.path}: ${problem.message}`;
    box.append(p);
  }
  box.hidden = false;
}
