// The gateway's web view: vanilla JS, no build step. The API key lives in an HttpOnly cookie
// (POST /v1/login); unsafe requests carry X-ASM-UI so the cookie cannot be ridden (CSRF).
// The transcript is rebuilt from the event stream alone: every event has a seq, the stream
// resumes after the last seq seen (EventSource's Last-Event-ID, or ?after= when this page
// reconnects itself), and an event at or below that seq is ignored, so a reconnect shows no
// gap and no duplicate.
"use strict";

const $ = (id) => document.getElementById(id);
const SECTIONS = ["login", "list", "session"];

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { "X-ASM-UI": "1" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) {
    const err = (data && data.error) || { code: "unknown_error", message: r.statusText };
    const e = new Error(`${err.code}: ${err.message}`);
    e.status = r.status;
    throw e;
  }
  return data;
}

function show(name) {
  for (const s of SECTIONS) $(s).hidden = s !== name;
}

function el(tag, cls, text) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined) n.textContent = text;
  return n;
}

// --- sign in --------------------------------------------------------------------------------

async function whoami() {
  try {
    const me = await api("GET", "/v1/whoami");
    $("who").textContent = `tenant ${me.tenant} · key ${me.key_id}`;
    $("logout").hidden = false;
    return me;
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    await api("POST", "/v1/login", { key: $("key").value.trim() });
    $("key").value = "";
    route();
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

$("logout").addEventListener("click", async () => {
  await api("POST", "/v1/logout");
  $("who").textContent = "";
  $("logout").hidden = true;
  route();
});

// --- session list ---------------------------------------------------------------------------

async function showList() {
  show("list");
  $("list-error").textContent = "";
  const body = $("sessions").tBodies[0];
  try {
    const data = await api("GET", "/v1/sessions?limit=200");
    body.replaceChildren();
    for (const s of data.sessions) {
      const tr = document.createElement("tr");
      const a = el("a", null, s.session_id);
      a.href = `#/s/${encodeURIComponent(s.session_id)}`;
      const first = el("td");
      first.append(a);
      tr.append(first);
      for (const v of [s.agent_id, s.provider, s.status, s.total_tokens, s.started_at]) {
        tr.append(el("td", null, v === null || v === undefined ? "" : String(v)));
      }
      body.append(tr);
    }
  } catch (e) {
    $("list-error").textContent = e.message;
  }
}

$("create-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const view = await api("POST", "/v1/sessions", {
      agent_id: $("agent").value.trim(),
      provider: $("provider").value.trim(),
    });
    location.hash = `#/s/${encodeURIComponent(view.session_id)}`;
  } catch (e) {
    $("list-error").textContent = e.message;
  }
});

// --- one session: live transcript -----------------------------------------------------------

const view = {
  sessionId: null,
  es: null,
  lastSeq: 0,
  ended: false,
  runs: new Map(), // run_id -> {block, text, thinking, attempt, textContent}
  refreshTimer: null,
};
window.asmView = view; // for the browser test and for people poking at the page

function runBlock(runId) {
  let run = view.runs.get(runId);
  if (run) return run;
  const block = el("div", "turn");
  block.dataset.run = runId;
  const prompt = el("div", "prompt");
  const thinkingBox = el("details", "thinking");
  thinkingBox.append(el("summary", null, "thinking"));
  const thinking = el("span", "thinking-text");
  thinkingBox.append(thinking);
  thinkingBox.hidden = true;
  const text = el("div", "text");
  const notes = el("div", "notes");
  block.append(prompt, thinkingBox, text, notes);
  $("transcript").append(block);
  run = { block, prompt, thinkingBox, thinking, text, notes, attempt: 0 };
  view.runs.set(runId, run);
  return run;
}

function lastUserText(input) {
  if (!Array.isArray(input)) return "";
  for (let i = input.length - 1; i >= 0; i--) {
    const m = input[i];
    if (m && m.role === "user") {
      if (typeof m.content === "string") return m.content;
      if (Array.isArray(m.content)) {
        return m.content.filter((b) => b && b.type === "text").map((b) => b.text).join("");
      }
    }
  }
  return "";
}

function apply(event) {
  if (event.seq <= view.lastSeq) return; // already shown: a reconnect overlapped
  view.lastSeq = event.seq;
  const d = event.data || {};
  if (!event.run_id) {
    if (event.type.startsWith("session_")) scheduleRefresh();
    return;
  }
  const run = runBlock(event.run_id);
  // A later attempt restarts the run's output: what the failed attempt streamed is void.
  if (event.attempt > run.attempt) {
    if (run.attempt > 0 && (run.text.textContent || run.thinking.textContent)) {
      run.text.textContent = "";
      run.thinking.textContent = "";
      run.thinkingBox.hidden = true;
      run.notes.append(el("div", "note", `retrying: attempt ${event.attempt} restarts the reply`));
    }
    run.attempt = event.attempt;
  } else if (event.attempt && event.attempt < run.attempt) {
    return; // a late event of a voided attempt
  }
  switch (event.type) {
    case "run_started":
      run.prompt.textContent = lastUserText(d.input) || (d.input_ref ? "(long prompt)" : "");
      scheduleRefresh();
      break;
    case "message_streamed":
      if (d.kind === "thinking") {
        run.thinkingBox.hidden = false;
        run.thinking.textContent += d.text || "";
      } else {
        run.text.textContent += d.text || "";
      }
      break;
    case "tool_call_started":
      run.notes.append(el("div", "tool", `▶ tool ${d.name} (${d.id})`));
      break;
    case "tool_call_completed":
      run.notes.append(el("div", "tool", `✓ tool ${d.name}: ${JSON.stringify(d.output)}`));
      break;
    case "tool_call_failed":
      run.notes.append(el("div", "tool", `✗ tool ${d.name}: ${d.error || ""}`));
      break;
    case "tool_approval_requested":
      run.notes.append(approvalBox(event.run_id, d));
      break;
    case "tool_approval_granted":
    case "tool_approval_denied": {
      const decided = event.type.replace("tool_approval_", "");
      settleApproval(d.digest, decided, d.reason);
      run.notes.append(el("div", "approval", `${d.name || "tool"}: ${decided}`));
      break;
    }
    case "error_occurred":
      run.notes.append(el("div", "note", `error: ${d.code || ""} ${d.message || ""}`));
      break;
    case "run_completed":
    case "run_failed":
    case "run_cancelled":
    case "run_timeout":
      run.notes.append(el("div", "note", event.type.replace("run_", "run ")));
      scheduleRefresh();
      break;
    case "token_usage_updated":
      scheduleRefresh();
      break;
  }
}

// An approval request: what the tool would do, and buttons that name its digest (the gateway
// checks the digest against the pending action; a second decision gets 409).
function approvalBox(runId, d) {
  const box = el("div", "approval pending");
  box.dataset.digest = d.digest || "";
  box.dataset.run = runId;
  const expiry = d.expires_at ? ` · expires ${d.expires_at}` : "";
  box.append(el("span", "approval-what", `approval requested: ${d.name || d.tool} (${d.id || d.call_id})${expiry} `));
  for (const [verb, label] of [["approve", "Approve"], ["deny", "Deny"]]) {
    const b = el("button", `${verb}-tool`, label);
    b.addEventListener("click", () => decide(box, runId, verb, d));
    box.append(b);
  }
  return box;
}

async function decide(box, runId, verb, d) {
  for (const b of box.querySelectorAll("button")) b.disabled = true;
  try {
    await api(
      "POST",
      `/v1/sessions/${encodeURIComponent(view.sessionId)}/runs/${encodeURIComponent(runId)}/${verb}`,
      { digest: d.digest, call_id: d.id || d.call_id },
    );
  } catch (e) {
    $("session-error").textContent = e.message;
    if (e.status !== 409) for (const b of box.querySelectorAll("button")) b.disabled = false;
  }
}

// The decision event (whoever made it: this page, another one, the CLI, an expiry) retires the
// buttons.
function settleApproval(digest, decided, reason) {
  for (const box of document.querySelectorAll(".approval.pending")) {
    if (box.dataset.digest !== digest) continue;
    box.classList.remove("pending");
    for (const b of box.querySelectorAll("button")) b.remove();
    box.append(el("span", "approval-decided", ` ${decided}${reason ? ` (${reason})` : ""}`));
  }
}

// Micro-dollars as dollars (the ledger's integer unit; cost_micros is 0 for unpriced models).
function dollars(micros) {
  return `$${(micros / 1e6).toFixed(micros && micros < 10000 ? 6 : 4)}`;
}

function connect() {
  if (view.es) view.es.close();
  // ?after= is this page's own resume point; on its automatic reconnects EventSource sends
  // Last-Event-ID, which the gateway prefers.
  const url = `/v1/sessions/${encodeURIComponent(view.sessionId)}/events?after=${view.lastSeq}`;
  const es = new EventSource(url);
  view.es = es;
  $("conn").textContent = "connecting";
  es.onopen = () => { $("conn").textContent = "live"; };
  es.onmessage = (m) => apply(JSON.parse(m.data));
  es.addEventListener("end", () => {
    view.ended = true;
    es.close();
    $("conn").textContent = "ended";
    scheduleRefresh();
  });
  es.addEventListener("asm-error", (m) => {
    $("session-error").textContent = JSON.parse(m.data).error.message;
  });
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED && !view.ended && view.es === es) {
      // The browser gave up (e.g. a 4xx/5xx answer): try again ourselves, from lastSeq.
      $("conn").textContent = "reconnecting";
      setTimeout(() => { if (view.es === es) connect(); }, 1000);
    } else if (!view.ended) {
      $("conn").textContent = "reconnecting";
    }
  };
}
// Drop the stream and resume from the last seq shown (the browser test uses it too).
view.reconnect = connect;
view.text = (runId) => (view.runs.get(runId) ? view.runs.get(runId).text.textContent : "");

function scheduleRefresh() {
  if (view.refreshTimer) return;
  view.refreshTimer = setTimeout(async () => {
    view.refreshTimer = null;
    await refresh();
  }, 150);
}

async function refresh() {
  try {
    const s = await api("GET", `/v1/sessions/${encodeURIComponent(view.sessionId)}`);
    $("status").textContent = s.status;
    $("tokens").textContent = String(s.usage.total_tokens);
    $("cost").textContent = dollars(s.cost_micros || 0);
    const body = $("runs").tBodies[0];
    body.replaceChildren();
    for (const r of s.runs) {
      const tr = document.createElement("tr");
      tr.dataset.run = r.run_id;
      tr.append(el("td", null, r.run_id), el("td", null, String(r.turn)));
      tr.append(el("td", "run-status", r.status));
      tr.append(el("td", null, String(r.usage.total_tokens)));
      // The run's cost so far over every attempt of every model call (the cost ledger).
      const cost = el("td", "run-cost", dollars(r.cost_micros || 0));
      cost.dataset.micros = String(r.cost_micros || 0);
      tr.append(cost);
      const cell = el("td");
      if (r.status === "running" || r.status === "pending") {
        const b = el("button", "cancel-run", "Cancel");
        b.addEventListener("click", () => cancelRun(r.run_id));
        cell.append(b);
      }
      tr.append(cell);
      body.append(tr);
    }
  } catch (e) {
    $("session-error").textContent = e.message;
  }
}

async function cancelRun(runId) {
  try {
    await api("POST", `/v1/sessions/${encodeURIComponent(view.sessionId)}/runs/${encodeURIComponent(runId)}/cancel`, {});
  } catch (e) {
    $("session-error").textContent = e.message;
  }
  scheduleRefresh();
}

$("prompt-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("session-error").textContent = "";
  let body = {};
  try {
    const extra = $("options").value.trim();
    body = extra ? JSON.parse(extra) : {};
  } catch (e) {
    $("session-error").textContent = `run options are not JSON: ${e.message}`;
    return;
  }
  body.prompt = $("prompt").value;
  try {
    await api("POST", `/v1/sessions/${encodeURIComponent(view.sessionId)}/runs`, body);
    $("prompt").value = "";
  } catch (e) {
    $("session-error").textContent = e.message;
  }
  scheduleRefresh();
});

$("cancel-session").addEventListener("click", async () => {
  try {
    await api("POST", `/v1/sessions/${encodeURIComponent(view.sessionId)}/cancel`, {});
  } catch (e) {
    $("session-error").textContent = e.message;
  }
  scheduleRefresh();
});

$("complete-session").addEventListener("click", async () => {
  try {
    await api("POST", `/v1/sessions/${encodeURIComponent(view.sessionId)}/complete`, {});
  } catch (e) {
    $("session-error").textContent = e.message;
  }
  scheduleRefresh();
});

function showSession(sessionId) {
  show("session");
  if (view.es) view.es.close();
  Object.assign(view, { sessionId, es: null, lastSeq: 0, ended: false, runs: new Map() });
  $("sid").textContent = sessionId;
  $("transcript").replaceChildren();
  $("runs").tBodies[0].replaceChildren();
  $("session-error").textContent = "";
  refresh();
  connect();
}

// --- routing --------------------------------------------------------------------------------

async function route() {
  const me = await whoami();
  if (!me) {
    if (view.es) view.es.close();
    show("login");
    return;
  }
  const m = location.hash.match(/^#\/s\/(.+)$/);
  if (m) showSession(decodeURIComponent(m[1]));
  else {
    if (view.es) view.es.close();
    showList();
  }
}

window.addEventListener("hashchange", route);
route();
