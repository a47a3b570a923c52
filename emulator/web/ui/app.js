// The emulator's logs page: a list read from /__emulator/logs, kept live by /__emulator/logs/stream
// (Server-Sent Events read with fetch, so the admin token can go in a header), a detail view, and the
// scenarios and delivery queues polled from the control plane. No framework, nothing from the internet.
//
// Every change of the filters shown starts a new generation. The list says whether it is the answer to
// the filters in the boxes: from the change until that generation's first page is drawn, the table
// carries aria-busy="true" (and data-filters names the filters it does answer) and "updating…" shows.
// Answers and stream events of a superseded generation are dropped.
"use strict";

const API = "/__emulator";
const FILTERS = ["q", "mrn", "dataModel", "eventType", "type", "status"];
const $ = (id) => document.getElementById(id);
const state = { rows: new Map(), cursor: null, selected: null, stream: null,
                generation: 0,  // bumped by every change of the filters shown
                drawn: -1,      // the generation whose answer the list shows
                view: null,     // what the list is asked for: see openView
                token: sessionStorage.getItem("emulatorAdminToken") || "" };

function headers() {
  return state.token ? { "X-Emulator-Admin-Token": state.token } : {};
}

async function api(path) {
  const answer = await fetch(API + path, { headers: headers() });
  if (answer.status === 401) {
    $("token-form").hidden = false;
    throw new Error("the control plane needs the admin token");
  }
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.error || `${answer.status}`);
  return body;
}

function query() {
  const params = new URLSearchParams();
  for (const name of FILTERS) {
    const value = $(name).value.trim();
    if (value) params.set(name, value);
  }
  return params.toString();
}

// One generation's question, read from the boxes once, so that its stream and its pages ask the same.
// `load` numbers its first-page loads (a reconnect or a reset reloads); `backlog` holds the stream's
// events while a first page is on its way, for them to be applied on top of it rather than under it.
function openView() {
  state.view = { generation: state.generation, filters: query(), load: 0, backlog: null };
  return state.view;
}

function current(view) {
  return state.view === view && view.generation === state.generation;
}

function showBusy() {
  const busy = state.drawn !== state.generation;
  $("logs").setAttribute("aria-busy", String(busy));
  $("updating").hidden = !busy;
  $("empty").hidden = busy || state.rows.size > 0;
}

function showError(error) {
  $("error").hidden = !error;
  $("error").textContent = error ? String(error.message || error) : "";
}

// ---- the list -------------------------------------------------------------------------------------
function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function row(log) {
  const tr = document.createElement("tr");
  tr.dataset.id = log.id;
  const when = new Date(log.createdAt);
  const time = cell(when.toLocaleTimeString([], { hour12: false }) + "." + String(when.getMilliseconds()).padStart(3, "0"));
  time.title = log.createdAt;
  const event = [log.dataModel, log.eventType].filter(Boolean).join(".") || "—";
  const route = `${log.source ? log.source.Name || log.source.ID : "—"} → ${log.destination ? log.destination.Name || log.destination.ID : "—"}`;
  tr.append(time, cell(log.type), cell(event), cell(route, "route"), cell(log.status, `status ${log.status}`),
            cell(String(log.attemptCount)));
  tr.cells[3].title = route;
  if (log.id === state.selected) tr.classList.add("selected");
  tr.addEventListener("click", () => select(log.id));
  return tr;
}

function upsert(log, isNew) {
  const body = $("logs").tBodies[0];
  const fresh = row(log);
  const old = state.rows.get(log.id);
  state.rows.set(log.id, fresh);
  if (old) {
    old.replaceWith(fresh);
    if (log.id === state.selected) select(log.id);
  } else if (isNew) {
    fresh.classList.add("new");
    body.prepend(fresh);
  } else {
    body.append(fresh);
  }
  $("empty").hidden = state.rows.size > 0 || state.drawn !== state.generation;
}

async function loadPage(view, more = false) {
  const load = more ? view.load : ++view.load;
  if (!more && !view.backlog) view.backlog = [];
  const params = new URLSearchParams(view.filters);
  if (more && state.cursor) params.set("cursor", state.cursor);
  let answer;
  try {
    answer = await api("/logs?" + params);
  } catch (error) {
    if (current(view)) showError(error);
    return;
  }
  if (!current(view) || load !== view.load) {
    console.debug(`logs: dropped an answer for superseded filters (${view.filters || "none"})`);
    return;
  }
  if (!more) {
    $("logs").tBodies[0].replaceChildren();
    state.rows.clear();
  }
  for (const log of answer.payload.logs) if (!state.rows.has(log.id)) upsert(log, false);
  if (!more) {
    // A new log the page already has is as new there; an update may be newer than the page's read
    // (and if older, the stream sends the change again at its next poll).
    for (const [name, log] of view.backlog) {
      if (name === "update") upsert(log, false);
      else if (!state.rows.has(log.id)) upsert(log, true);
    }
    view.backlog = null;
    state.drawn = view.generation;
    $("logs").dataset.filters = view.filters;
  }
  state.cursor = answer.meta.nextCursor;
  $("more").hidden = !state.cursor;
  showBusy();
  showError(null);
}

function live(view, name, log) {
  if (view.backlog) view.backlog.push([name, log]);
  else upsert(log, name === "log");
}

// ---- live updates -----------------------------------------------------------------------------------
async function connect(view) {
  if (state.stream) state.stream.abort();
  const control = new AbortController();
  state.stream = control;
  let loaded = false;
  try {
    const answer = await fetch(`${API}/logs/stream?${view.filters}`, { headers: headers(), signal: control.signal });
    if (!answer.ok) {
      const body = await answer.json().catch(() => ({}));
      if (answer.status === 401) $("token-form").hidden = false;
      throw new Error(body.error || `stream: ${answer.status}`);
    }
    setLive(true);
    const reader = answer.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        // A chunk read after the filters changed belongs to the old view: drop it (the new view's
        // first page, read after its stream's hello, has these logs if they match).
        if (state.stream !== control || !current(view)) return;
        const [name, data] = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (name === "hello" || name === "reset") { loaded = true; loadPage(view); }
        else if (name === "log" || name === "update") live(view, name, data);
      }
    }
  } catch (error) {
    if (control.signal.aborted) return;
    showError(error);
  }
  if (!loaded) loadPage(view);
  setLive(false);
  if (!control.signal.aborted) setTimeout(() => { if (state.stream === control && current(view)) connect(view); }, 2000);
}

function parseEvent(text) {
  let name = "message", data = "";
  for (const line of text.split("\n")) {
    if (line.startsWith("event: ")) name = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  return [name, data ? JSON.parse(data) : null];
}

function setLive(on) {
  $("live").className = on ? "live on" : "live off";
  $("live").textContent = on ? "live" : "reconnecting…";
}

// The boxes no longer show what the list answers: said at once, before the debounce runs out.
function filtersChanged() {
  state.generation += 1;
  showBusy();
}

function refilter() {
  clearTimeout(typing);
  state.cursor = null;
  if (state.selected && !state.rows.has(state.selected)) state.selected = null;
  connect(openView());  // its hello loads the first page with the new filters
}

// ---- one log --------------------------------------------------------------------------------------
function escapeHtml(text) {
  // Quotes stay: the text goes inside <pre>, never into an attribute, and the highlighter needs them.
  return text.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" }[c]));
}

function jsonBlock(value) {
  const pre = document.createElement("pre");
  pre.className = "json";
  if (value === null || value === undefined) {
    pre.textContent = "(empty)";
    return pre;
  }
  const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
  pre.innerHTML = escapeHtml(text).replace(
    /("(?:\\.|[^"\\])*")(\s*:)?|\b(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\b|\b(true|false|null)\b/g,
    (m, str, colon, num, lit) => str ? `<span class="${colon ? "k" : "s"}">${str}</span>${colon || ""}`
      : num ? `<span class="n">${num}</span>` : `<span class="b">${lit}</span>`);
  return pre;
}

function details(title, value, open) {
  const box = document.createElement("details");
  box.open = open;
  const summary = document.createElement("summary");
  summary.textContent = title;
  box.append(summary, jsonBlock(value));
  return box;
}

async function select(id) {
  state.selected = id;
  for (const [rowId, tr] of state.rows) tr.classList.toggle("selected", rowId === id);
  let log;
  try {
    log = (await api(`/logs/${encodeURIComponent(id)}`)).payload.log;
  } catch (error) {
    showError(error);
    return;
  }
  if (state.selected !== id) return;
  $("detail").hidden = false;
  $("detail-title").textContent = `${[log.dataModel, log.eventType].filter(Boolean).join(".") || "Log"} · ${log.status}`;
  const meta = $("detail-meta");
  meta.replaceChildren();
  const facts = [["Log ID", log.id], ["Created", log.createdAt], ["Type", log.type],
                 ["Source", log.source ? `${log.source.Name} (${log.source.ID})` : "—"],
                 ["Destination", log.destination ? `${log.destination.Name} (${log.destination.ID})` : "—"],
                 ["Test", String(log.test)]];
  for (const [k, v] of facts) {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k; dd.textContent = v;
    meta.append(dt, dd);
  }
  const errors = $("detail-errors");
  errors.replaceChildren();
  if (log.errors.length) {
    const h = document.createElement("h3"), ul = document.createElement("ul");
    h.textContent = "Errors";
    ul.className = "errors";
    for (const e of log.errors) {
      const li = document.createElement("li");
      li.textContent = e.Text || JSON.stringify(e);
      ul.append(li);
    }
    errors.append(h, ul);
  }
  const list = $("attempts");
  list.replaceChildren();
  log.attempts.forEach((a, i) => {
    const li = document.createElement("li");
    li.className = a.httpStatus >= 200 && a.httpStatus < 300 ? "ok" : "bad";
    const head = document.createElement("div");
    head.textContent = `${a.createdAt} · HTTP ${a.httpStatus || "no answer"} · ${a.method || ""} ${a.url || ""}`
      + (a.latencyMs != null ? ` · ${a.latencyMs.toFixed(1)} ms` : "");
    li.append(head, details("Request", a.request, i === log.attempts.length - 1),
              details("Response", a.response, i === log.attempts.length - 1));
    if (a.scenario) li.append(details("Scenario", a.scenario, false));
    list.append(li);
  });
  if (!log.attempts.length) list.innerHTML = "<li>none yet (queued)</li>";
}

// ---- scenarios and queues -------------------------------------------------------------------------
async function refreshSide() {
  try {
    const [scenarios, destinations] = await Promise.all([api("/scenarios"), api("/destinations")]);
    const ul = $("scenarios");
    ul.replaceChildren();
    for (const s of scenarios.payload.active) {
      const li = document.createElement("li");
      const fired = s.rules.reduce((n, r) => n + r.fired, 0);
      li.textContent = `${s.name} — state ${s.state}, ${s.rules.length} rules (${fired} fired)`;
      li.title = s.description || "";
      ul.append(li);
    }
    if (!scenarios.payload.active.length) ul.innerHTML = '<li class="none">none</li>';
    const body = $("queues").tBodies[0];
    body.replaceChildren();
    for (const d of destinations.payload.destinations) {
      const q = d.queue;
      const tr = document.createElement("tr");
      const label = q.paused ? "paused" : q.failures ? "retrying" : "running";
      tr.append(cell(d.name), cell(String(q.pending)), cell(d.url ? label : "EHR", d.url ? label : "none"));
      tr.title = `${d.id}${q.lastError ? " — last error: " + q.lastError : ""}`;
      body.append(tr);
    }
  } catch (error) {
    // the list shows errors; the side panel just keeps its last state
  }
}

// ---- wiring ---------------------------------------------------------------------------------------
let typing = null;
$("filters").addEventListener("input", () => {
  filtersChanged();
  clearTimeout(typing);
  typing = setTimeout(refilter, 250);
});
$("filters").addEventListener("submit", (e) => { e.preventDefault(); filtersChanged(); refilter(); });
$("clear").addEventListener("click", () => {
  for (const name of FILTERS) $(name).value = "";
  filtersChanged();
  refilter();
});
$("more").addEventListener("click", () => loadPage(state.view, true));
$("close").addEventListener("click", () => {
  $("detail").hidden = true;
  state.selected = null;
  for (const tr of state.rows.values()) tr.classList.remove("selected");
});
$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.token = $("token").value;
  sessionStorage.setItem("emulatorAdminToken", state.token);
  $("token-form").hidden = true;
  filtersChanged();  // the same filters, but the answer so far was "needs the token"
  refilter();
  refreshSide();
});
for (const model of ["PatientAdmin", "PatientSearch", "Clinical Summary", "Order", "Results", "Scheduling",
                     "Notes", "Media", "Medications", "Financial", "Claim", "Device", "Referral", "Provider"]) {
  const option = document.createElement("option");
  option.value = model;
  $("models").append(option);
}
refilter();
refreshSide();
setInterval(refreshSide, 2000);
