// stellwerk console: plain JavaScript, no framework, no build step.
// Every data call goes to this server's admin API with the admin token the
// user signed in with (sessionStorage, this tab only) as a bearer token.
// Text from the server is only ever set as text, never as HTML, and
// through shown, which marks the characters that would hide or reorder it.
"use strict";

const TOKEN = "stellwerk.adminToken";
const TRYKEY = "stellwerk.tryKey";
const MAX_DECISIONS = 200;

const $ = (id) => document.getElementById(id);

// el builds an element: el("td", {class: "x"}, "text", child, …). Text
// goes in through shown, and a title through shownTitle.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "style") Object.assign(e.style, v); // CSSOM: the CSP refuses style attributes
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "title") e.title = shownTitle(String(v));
    // Names a screen reader says, and labels the narrow layout shows,
    // mark hidden characters as the text does (a client's user or tag
    // with U+202E read as another: the red team).
    else if (k === "aria-label" || k === "data-label") e.setAttribute(k, shownTitle(String(v)));
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : shown(String(c)));
  }
  return e;
}

// HIDDEN matches the characters a value cannot be shown with as they are:
// controls (C0, C1), format characters (bidi overrides, embeddings,
// isolates and marks, zero-width spaces and joiners, U+061C, U+FEFF, tag
// characters), line and paragraph separators, surrogates, and the Hangul
// fillers that draw as nothing. A client chooses many strings the console
// shows (a model name, what a policy's reason quotes): with U+202E in it,
// "admin\u202Etxt.exe" reads "adminexe.txt", and a value of U+200B reads
// empty (the non-English probe).
// Variation selectors, the combining grapheme joiner and the braille blank
// draw as nothing too ("alice" and "alice\uFE0F" looked the same: the red team).
const HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\u115F\u1160\u3164\uFFA0\u034F\u2800\uFE00-\uFE0F\u{E0100}-\u{E01EF}]/u;
const HIDDEN_ALL = new RegExp(HIDDEN.source, "gu");
// NOT_ASCII: a value with anything else than printable ASCII is isolated.
const NOT_ASCII = /[^\x20-\x7e]/;

const HIDDEN_NAMES = {
  0x9: "TAB", 0xa: "LINE FEED", 0xd: "CARRIAGE RETURN", 0x1b: "ESCAPE", 0xad: "SOFT HYPHEN", 0x61c: "ARABIC LETTER MARK",
  0x180e: "MONGOLIAN VOWEL SEPARATOR", 0x200b: "ZERO WIDTH SPACE", 0x200c: "ZERO WIDTH NON-JOINER",
  0x200d: "ZERO WIDTH JOINER", 0x200e: "LEFT-TO-RIGHT MARK", 0x200f: "RIGHT-TO-LEFT MARK", 0x2028: "LINE SEPARATOR",
  0x2029: "PARAGRAPH SEPARATOR", 0x202a: "LEFT-TO-RIGHT EMBEDDING", 0x202b: "RIGHT-TO-LEFT EMBEDDING",
  0x202c: "POP DIRECTIONAL FORMATTING", 0x202d: "LEFT-TO-RIGHT OVERRIDE", 0x202e: "RIGHT-TO-LEFT OVERRIDE",
  0x2060: "WORD JOINER", 0x2066: "LEFT-TO-RIGHT ISOLATE", 0x2067: "RIGHT-TO-LEFT ISOLATE", 0x2068: "FIRST STRONG ISOLATE",
  0x2069: "POP DIRECTIONAL ISOLATE", 0x3164: "HANGUL FILLER", 0xfeff: "ZERO WIDTH NO-BREAK SPACE (BOM)",
};

// codeOf is a character's code point as U+XXXX.
function codeOf(ch) { return "U+" + ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0"); }

// hiddenName names a hidden character for its tooltip.
function hiddenName(ch) {
  const cp = ch.codePointAt(0);
  if (HIDDEN_NAMES[cp]) return HIDDEN_NAMES[cp];
  if (cp >= 0xe0000 && cp <= 0xe007f) return "TAG CHARACTER";
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return "CONTROL CHARACTER";
  return "INVISIBLE CHARACTER";
}

// shown is how the console shows a string it did not write itself: as a
// text node when it is plain ASCII; else in a <bdi>, so that right-to-left
// text in it cannot reorder what stands beside it, with each hidden
// character (HIDDEN) drawn as a marked ⟦U+202E⟧ whose tooltip names it.
// The marks keep the real character in data-char: copying a selection
// copies the value's real text (see the copy listener below). Every text
// the page shows goes through it (el), never in as markup.
function shown(s) {
  if (!NOT_ASCII.test(s)) return document.createTextNode(s);
  const b = document.createElement("bdi");
  if (!HIDDEN.test(s)) { b.textContent = s; return b; }
  b.className = "has-hidden";
  let last = 0;
  for (const m of s.matchAll(HIDDEN_ALL)) {
    if (m.index > last) b.append(s.slice(last, m.index));
    const mark = document.createElement("span");
    mark.className = "hidden-char";
    mark.textContent = "⟦" + codeOf(m[0]) + "⟧";
    mark.title = codeOf(m[0]) + " " + hiddenName(m[0]) + ": an invisible or control character in this value, shown by its code";
    mark.dataset.char = m[0];
    b.append(mark);
    last = m.index + m[0].length;
  }
  if (last < s.length) b.append(s.slice(last));
  return b;
}

// shownTitle is shown for a tooltip, which holds text only: each hidden
// character becomes ⟦U+XXXX⟧.
function shownTitle(s) { return s.replace(HIDDEN_ALL, (ch) => "⟦" + codeOf(ch) + "⟧"); }

// setText replaces an element's text with a string shown as shown does.
function setText(e, s) { e.replaceChildren(shown(String(s))); }

// Copying a selection gives the values' real characters back in place of
// their marks: an id or name copied from the console finds the record.
document.addEventListener("copy", (ev) => {
  const sel = document.getSelection();
  if (!sel || sel.rangeCount === 0 || !ev.clipboardData) return;
  let marked = false;
  const parts = [];
  for (let i = 0; i < sel.rangeCount; i++) {
    const frag = sel.getRangeAt(i).cloneContents();
    for (const m of frag.querySelectorAll(".hidden-char[data-char]")) { m.replaceWith(m.dataset.char); marked = true; }
    parts.push(frag.textContent);
  }
  if (!marked) return;
  ev.clipboardData.setData("text/plain", parts.join("\n"));
  ev.preventDefault();
});

function token() { return sessionStorage.getItem(TOKEN) || ""; }

// api calls the admin API; it returns {status, body} with body parsed as
// JSON when it is JSON. A 401 signs the user out.
// session counts sign-outs: an answer that arrives after one belongs to
// the user who left, and is dropped (its caller never resumes).
let session = 0;

async function api(method, path, body, headers) {
  const mine = session;
  const h = Object.assign({ "Authorization": "Bearer " + token() }, headers || {});
  if (body !== undefined) h["Content-Type"] = "application/json";
  let resp, text;
  try {
    resp = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
    text = await resp.text();
  } catch (_) {
    // The server did not answer (stopped, restarting, the network): every
    // caller shows this as it shows an error answer, instead of waiting.
    if (mine !== session) return new Promise(() => {});
    return { status: 0, body: { error: { code: "unreachable", message: "the admin API did not answer; is stellwerk running? Try again." } }, headers: new Headers() };
  }
  if (mine !== session) return new Promise(() => {});
  let data = text;
  try { data = JSON.parse(text); } catch (_) { /* not JSON */ }
  // A 401 from /admin/try may be the virtual key's (Envoy's answer): only
  // the admin API's own refusal signs out.
  const adminRefused = path !== "/admin/try" || (data && data.error && data.error.code === "invalid_admin_token");
  if (resp.status === 401 && adminRefused) signOut("The admin token was refused: sign in again.");
  return { status: resp.status, body: data, headers: resp.headers };
}

function errorText(r) {
  const e = r.body && r.body.error;
  if (e) return r.status + " " + (e.code || e.type || "") + ": " + e.message;
  return "HTTP " + r.status;
}

// put replaces an element's children with the parts given, leaving out
// absent ones (undefined, null, false: a panel's optional sections).
function put(e, ...parts) {
  e.replaceChildren(...parts.flat().filter((p) => p !== undefined && p !== null && p !== false));
}

// loading replaces a panel's old content at once, so nobody acts on
// figures that are being replaced.
function loading() { return el("p", { class: "muted" }, "loading…"); }

function errorBox(r) { return el("p", { class: "error", role: "alert", tabindex: "-1" }, errorText(r)); }

// announce sets a panel's status line (a visually hidden role=status
// element): a screen reader says it when the user is free, so a result
// that replaced a table is heard without reading the table out (WCAG
// 4.1.3). The same text twice is made to differ, or it would not be said.
function announce(id, text) {
  const e = $(id);
  if (!e) return;
  text = shownTitle(text);
  e.textContent = text === e.textContent ? text + "\u00a0" : text;
}

// focusOn moves the keyboard focus to an element the user did not
// tab to (a heading, a row's cell): it takes focus without joining the
// tab order. Without it a control that disappears or is redrawn leaves
// the focus on <body>, the top of the page (WCAG 2.4.3).
function focusOn(e) {
  if (!e) return;
  if (!e.hasAttribute("tabindex")) e.setAttribute("tabindex", "-1");
  e.focus();
}

// panelHeading is the visible panel's heading, where the focus goes when
// the control the user was on went away.
function panelHeading() { return document.querySelector(".panel:not([hidden]) h2"); }

const eur = (v) => (v === undefined || v === null) ? "–" : "€" + Number(v).toFixed(v !== 0 && Math.abs(v) < 0.01 ? 6 : 4);
const when = (t) => { if (!t) return "–"; const d = new Date(t); return isNaN(d) ? String(t) : d.toLocaleString(); };

// table renders rows (objects) under the given columns: [label, fn(row)],
// in a scroll region named name: it takes the focus, so a keyboard user
// can scroll a table wider than the screen (WCAG 2.1.1, 4.1.2).
function table(rows, cols, rowAttrs, name) {
  if (!rows || rows.length === 0) return el("p", { class: "muted" }, "Nothing yet.");
  return scrollRegion(name, el("table", {},
    el("thead", {}, el("tr", {}, cols.map(([label]) => headCell(label)))),
    el("tbody", {}, rows.map((r) => el("tr", rowAttrs ? rowAttrs(r) : {},
      cols.map(([label, fn]) => el("td", { "data-label": label }, fn(r))))))));
}

function scrollRegion(name, child) {
  return el("div", { class: "scroll", role: "region", tabindex: "0", "aria-label": name || "table" }, child);
}

// headCell is a column's header; a column without a visible one (a
// button's) is named "Action" for a screen reader (WCAG 1.3.1).
function headCell(label) {
  return el("th", { scope: "col" }, label || el("span", { class: "sr-only" }, "Action"));
}

// whenEl is a time as when writes it, in a <time> with its datetime.
function whenEl(t) {
  const d = new Date(t);
  return t && !isNaN(d) ? el("time", { datetime: d.toISOString() }, when(t)) : when(t);
}

// kv renders an object's members as a definition list.
// An object inside is a list of its own; a duration in nanoseconds
// (…_ns) reads in ms or s, a time (…_at, last_…) in local time (the
// console probe read the audit writer as a JSON blob).
function kv(obj) {
  const dl = el("dl", { class: "kv" });
  for (const [k, v] of Object.entries(obj || {})) {
    if (v === undefined || v === null || v === "") continue;
    let shown;
    if (typeof v === "object" && !Array.isArray(v)) shown = kv(v);
    else if (Array.isArray(v)) shown = v.map((x) => typeof x === "object" ? JSON.stringify(x) : String(x)).join(", ") || "none";
    else if (k.endsWith("_ns") && typeof v === "number") shown = v >= 1e9 ? (v / 1e9).toFixed(1) + " s" : (v / 1e6).toFixed(1) + " ms";
    else if ((k.endsWith("_at") || k.startsWith("last_")) && typeof v === "string" && !isNaN(Date.parse(v))) shown = when(v);
    else shown = String(v);
    dl.append(el("dt", {}, k.replace(/_ns$/, "").replaceAll("_", " ")), el("dd", {}, shown));
  }
  return dl;
}

/* ---------- sign in ---------- */

async function signIn(t, typed) {
  if (!/^[\x21-\x7e]+$/.test(t)) {
    // A header carries nothing else: fetch would refuse it without a word.
    $("login-error").textContent = "An admin token is printable ASCII, without spaces: check what was pasted.";
    return;
  }
  sessionStorage.setItem(TOKEN, t);
  const r = await api("GET", "/status");
  if (r.status !== 200) {
    sessionStorage.removeItem(TOKEN);
    setText($("login-error"), errorText(r));
    return;
  }
  $("login-error").textContent = "";
  $("token").value = "";
  $("login").hidden = true;
  $("app").hidden = false;
  $("top-right").hidden = false;
  const me = await api("GET", "/admin/whoami");
  const role = me.status === 200 ? me.body.role : "";
  setText($("who"), (role ? me.body.token_id + " (" + role + ") · " : "") + "stellwerk " + (r.body.version || ""));
  // Offer only what the role may do; the server decides either way.
  document.body.dataset.role = role;
  $("key-create-box").hidden = role !== "admin";
  document.querySelector('#tabs button[data-tab="try"]').hidden = role !== "admin" && role !== "operator";
  startStream();
  show(location.hash.slice(1) || "live");
  // The form the focus was in is gone: the panel's heading takes it.
  if (typed) focusOn(panelHeading());
}

function signOut(msg) {
  session++;
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(TRYKEY);
  stopStream();
  // Nothing the last user saw stays in the tab for the next one: a new
  // key's secret, the try-it key and answer, the decisions, every panel.
  for (const id of ["key-secret", "keys-out", "try-result", "try-decision", "live-list", "spend-out", "budgets-out",
    "routes-out", "route-detail", "providers-out", "policy-out"]) put($(id));
  for (const f of ["try-form", "key-create", "keys-filter", "spend-form", "budgets-form"]) $(f).reset(); // the prompt, a key's id, …
  $("try-key").value = "";
  trying = false;
  $("try-send").removeAttribute("aria-disabled");
  decisions.clear();
  waiting.clear();
  seen = 0;
  $("live-count").textContent = "waiting for requests…";
  $("live-dropped").textContent = "";
  $("app").hidden = true;
  $("top-right").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = msg || "";
  // The app the focus was in is hidden: the token field takes it.
  $("token").focus();
}

/* ---------- tabs ---------- */

const loaders = {
  spend: loadSpend, budgets: loadBudgets, keys: loadKeys, routes: loadRoutes,
  providers: loadProviders, policy: loadPolicy,
};

// The tabs follow the ARIA tabs pattern (WCAG 4.1.2): the chosen one is
// aria-selected and the only one in the tab order; ←/→, Home and End move
// between them and Enter or Space shows one (shown on demand: a panel
// loads its figures when shown).
function show(tab) {
  const b = document.querySelector('#tabs button[data-tab="' + tab + '"]');
  if (!$("panel-" + tab) || !b || b.hidden) tab = "live";
  for (const b of document.querySelectorAll("#tabs button")) {
    const on = b.dataset.tab === tab;
    b.classList.toggle("active", on);
    b.setAttribute("aria-selected", on ? "true" : "false");
    b.tabIndex = on ? 0 : -1;
  }
  for (const p of document.querySelectorAll(".panel")) p.hidden = p.id !== "panel-" + tab;
  document.title = $("tab-" + tab).textContent + " · stellwerk console";
  if (location.hash !== "#" + tab) history.replaceState(null, "", "#" + tab);
  if (loaders[tab]) loaders[tab]();
}

function tabKeys(ev) {
  const tabs = [...document.querySelectorAll("#tabs button")].filter((b) => !b.hidden);
  const i = tabs.indexOf(document.activeElement);
  if (i < 0) return;
  const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[ev.key];
  if (to === undefined) return;
  ev.preventDefault();
  const next = tabs[(to + tabs.length) % tabs.length];
  for (const b of tabs) b.tabIndex = b === next ? 0 : -1;
  next.focus();
}

/* ---------- live stream ---------- */

let streamAbort = null;
let paused = false;
let seen = 0;
const decisions = new Map(); // id → decision, for the try-it panel
const waiting = new Map();   // id → callback waiting for that decision

function setStreamState(state, text) {
  const s = $("stream-state");
  s.className = "pill " + state;
  // A status region: only a change is written, so a reconnecting loop
  // is said once, not every two seconds.
  if (s.textContent !== "stream: " + text) s.textContent = "stream: " + text;
}

// startStream reads GET /admin/decisions/stream with fetch, so that the
// token goes in a header, and reconnects after a pause when it ends.
async function startStream() {
  stopStream();
  const ctl = new AbortController();
  streamAbort = ctl;
  while (!ctl.signal.aborted && token()) {
    try {
      const resp = await fetch("/admin/decisions/stream", {
        headers: { "Authorization": "Bearer " + token(), "Accept": "text/event-stream" }, signal: ctl.signal, cache: "no-store",
      });
      if (resp.status === 401) { signOut("The admin token was refused: sign in again."); return; }
      if (!resp.ok) { setStreamState("err", "HTTP " + resp.status); await sleep(5000); continue; }
      setStreamState("on", "live");
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          onEvent(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    setStreamState("err", "reconnecting");
    await sleep(2000);
  }
}

function stopStream() {
  if (streamAbort) streamAbort.abort();
  streamAbort = null;
  setStreamState("off", "off");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A tab in the background gives its stream up: a browser keeps six
// connections to one server, and each signed-in tab's stream held one, so
// six tabs left no connection for any panel, in any of them (the console
// probe). It comes back when the tab is shown again.
document.addEventListener("visibilitychange", () => {
  if (!token() || $("app").hidden) return;
  if (document.hidden) {
    stopStream();
    setStreamState("off", "paused while the tab is in the background");
  } else if (!streamAbort) {
    startStream();
  }
});

function onEvent(block) {
  let event = "message", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const j = line.indexOf(":");
    const field = j < 0 ? line : line.slice(0, j);
    const val = j < 0 ? "" : line.slice(j + 1).replace(/^ /, "");
    if (field === "event") event = val;
    else if (field === "data") data += (data ? "\n" : "") + val;
  }
  if (event === "dropped") {
    const d = JSON.parse(data);
    // Said by a screen reader (role=status); the stream itself is not a
    // live region: a decision a second would drown everything else.
    $("live-dropped").textContent = "this browser was too slow: " + d.dropped + " decisions skipped";
    return;
  }
  if (event !== "decision") return;
  const d = JSON.parse(data);
  decisions.set(d.id, d);
  if (decisions.size > 1000) decisions.delete(decisions.keys().next().value);
  const cb = waiting.get(d.id);
  if (cb) { waiting.delete(d.id); cb(d); }
  seen++;
  $("live-count").textContent = seen + " decision" + (seen === 1 ? "" : "s") + " seen";
  if (paused) return;
  const list = $("live-list");
  list.prepend(decisionCard(d));
  while (list.children.length > MAX_DECISIONS) list.lastChild.remove();
}

function statusClass(d) {
  if (!d.status || d.status >= 500) return "bad";
  if (d.status >= 400) return "warn";
  return "good";
}

// candidateLines is a record's candidates as one object per model: the
// record writes them by columns (schema version 2: {"model":[…],
// "verdict":[…],…}, a column left out when no line has a value) and wrote
// them as a list of objects before (version 1).
function candidateLines(cands) {
  if (!cands) return [];
  if (Array.isArray(cands)) return cands;
  const models = cands.model || [];
  return models.map((_, i) => {
    const line = {};
    for (const [k, col] of Object.entries(cands)) if (Array.isArray(col)) line[k] = col[i];
    return line;
  });
}

// saving says what a request saved against the baseline model, or what it
// cost more ("€-0.000090 vs m" read as a typo).
function saving(v, baseline) {
  if (v < 0) return eur(-v) + " more than " + baseline;
  return eur(v) + " less than " + baseline;
}

// decisionCard shows one decision: the summary line, then the
// classification and the candidates weighed.
function decisionCard(d, open) {
  const c = d.classification || {};
  const cands = candidateLines(d.candidates);
  const pii = Object.entries(c.pii || {}).map(([k, n]) => k + "×" + n).join(", ");
  // A request refused before a model was chosen names the model it asked
  // for (the console probe saw only "—").
  const asked = d.request && d.request.model ? "asked for " + d.request.model : "—";
  const served = d.served && d.served !== d.chosen ? d.chosen + " → " + d.served : (d.served || d.chosen || asked);
  const cost = d.cost || {};
  const route = d.route ? d.route.name + "@" + d.route.version + (d.route.arm ? " (" + d.route.arm + ")" : "") : "";
  const excluded = cands.filter((x) => x.verdict !== "chosen" && x.verdict !== "eligible" && x.verdict !== "fallback");
  return el("article", { class: "decision " + statusClass(d), "data-id": d.id },
    el("div", { class: "d-head" },
      el("span", { class: "badge " + statusClass(d) }, d.status ? String(d.status) : "—"),
      el("strong", { class: "d-model" }, served),
      d.provider && el("span", { class: "muted" }, "via " + d.provider),
      el("span", { class: "spacer" }),
      el("time", { class: "muted", datetime: d.time }, new Date(d.time).toLocaleTimeString())),
    el("div", { class: "d-facts" },
      fact("workspace", d.workspace || "—"),
      fact("cost", eur(cost.eur)),
      fact("saving", cost.baseline_model ? saving(cost.saving_eur || 0, cost.baseline_model) : "–"),
      fact("latency", d.latency_ms + " ms"),
      fact("router", ((d.router_overhead_us || 0) / 1000).toFixed(2) + " ms"),
      route && fact("route", route),
      d.error_code && fact("error", d.error_code)),
    el("div", { class: "d-facts" },
      fact("task", c.task || "—"),
      fact("sensitivity", c.sensitivity || "—"),
      fact("risk", c.risk || "—"),
      fact("PII", pii || "none"),
      fact("secrets", String(c.secrets || 0)),
      d.constraint && fact("constraint", d.constraint),
      d.objective && fact("objective", d.objective)),
    d.reason && el("p", { class: "d-reason" }, d.reason),
    (d.deny || []).length > 0 && el("p", { class: "error" }, "denied: " + d.deny.join("; ")),
    cands.length > 0 && el("details", { open: !!open },
      el("summary", {}, cands.length + " candidates weighed" + (excluded.length ? ", " + excluded.length + " excluded" : "")),
      table(cands, [
        ["model", (x) => x.model],
        ["provider", (x) => x.provider || ""],
        ["verdict", (x) => el("span", { class: "verdict " + x.verdict }, x.verdict)],
        ["why", (x) => x.reason || ""],
        ["est. cost", (x) => x.estimated_cost_eur ? eur(x.estimated_cost_eur) : ""],
        ["quality", (x) => x.quality ? x.quality.toFixed(2) : ""],
        ["residency", (x) => x.residency || ""],
      ], null, "Candidates weighed for decision " + d.id)),
    el("div", { class: "d-id muted" }, d.id));
}

function fact(label, value) {
  return el("span", { class: "fact" }, el("span", { class: "muted" }, label + " "), value);
}

/* ---------- try it ---------- */

// trying is set while a try-it request is out: a second Send waits for
// it. The button is aria-disabled, not disabled: a disabled button loses
// the keyboard focus to <body> (WCAG 2.4.3).
let trying = false;

// decisionSummary is a decision in one sentence, for the status line.
function decisionSummary(d) {
  const cands = candidateLines(d.candidates);
  const excluded = cands.filter((x) => x.verdict !== "chosen" && x.verdict !== "eligible" && x.verdict !== "fallback");
  return "Its decision: " + (d.status || "no status") + ", " + (d.served || d.chosen || "no model") +
    (d.provider ? " via " + d.provider : "") + (cands.length ? ", " + cands.length + " candidates weighed, " + excluded.length + " excluded" : "") + ".";
}

async function sendTry(ev) {
  ev.preventDefault();
  if (trying) return;
  const key = $("try-key").value.trim();
  if (key) sessionStorage.setItem(TRYKEY, key); else sessionStorage.removeItem(TRYKEY);
  const body = { model: $("try-model").value.trim() || "auto", messages: [{ role: "user", content: $("try-message").value }] };
  const policy = {};
  if ($("try-optimize").value) policy.optimize = $("try-optimize").value;
  if ($("try-residency").value) policy.residency = $("try-residency").value;
  if (Object.keys(policy).length) body.policy = policy;
  const out = $("try-result"), dec = $("try-decision");
  put(out, el("p", { class: "muted" }, "sending…"));
  put(dec, );
  announce("try-decision-status", "");
  trying = true;
  $("try-send").setAttribute("aria-disabled", "true");
  const started = performance.now();
  let r;
  try {
    r = await api("POST", "/admin/try", body, key ? { "X-Stellwerk-Try-Key": key } : {});
  } finally {
    trying = false;
    $("try-send").removeAttribute("aria-disabled");
  }
  const ms = Math.round(performance.now() - started);
  const id = r.headers.get("x-stellwerk-decision-id");
  const answer = r.body && r.body.choices ? r.body.choices.map((c) => c.message && c.message.content).join("\n") : "";
  put(out, el("div", { class: "card try-answer " + (r.status < 400 ? "good" : "bad") },
    el("div", { class: "d-head" },
      el("span", { class: "badge " + (r.status < 400 ? "good" : r.status < 500 ? "warn" : "bad") }, String(r.status)),
      el("strong", {}, r.headers.get("x-stellwerk-model") || "no model"),
      r.headers.get("x-stellwerk-provider") && el("span", { class: "muted" }, "via " + r.headers.get("x-stellwerk-provider")),
      el("span", { class: "spacer" }), el("span", { class: "muted" }, ms + " ms")),
    r.headers.get("x-stellwerk-reason") && el("p", { class: "d-reason" }, r.headers.get("x-stellwerk-reason")),
    // The answer keeps its line breaks; every other hidden character is marked.
    r.status >= 400 ? errorBox(r) : el("p", { class: "answer" }, answer.split("\n").flatMap((l, i) => [i > 0 && document.createTextNode("\n"), l])),
    id && el("p", { class: "muted break" }, "decision " + id)));
  if (!id) return;
  const render = (d) => { put(dec, el("h3", {}, "Its decision"), decisionCard(d, true)); announce("try-decision-status", decisionSummary(d)); };
  if (decisions.has(id)) { render(decisions.get(id)); return; }
  const noneText = "No decision: a request refused before it was decided (its key, its URL) has none.";
  const none = () => { put(dec, el("p", { class: "muted" }, noneText)); announce("try-decision-status", noneText); };
  if (r.status === 401) { none(); return; }
  put(dec, el("p", { class: "muted" }, "waiting for the decision on the live stream…"));
  waiting.set(id, render);
  setTimeout(() => { if (waiting.get(id) === render) { waiting.delete(id); none(); } }, 10000);
}

/* ---------- spend ---------- */

async function loadSpend(ev) {
  if (ev) ev.preventDefault();
  const by = $("spend-by").value;
  const out = $("spend-out");
  put(out, loading());
  const r = await api("GET", "/admin/spend?since=" + encodeURIComponent($("spend-since").value) + "&group_by=day," + encodeURIComponent(by));
  if (r.status !== 200) { put(out, errorBox(r)); return; }
  const groups = r.body.data || [];
  if (groups.length === 0) { put(out, el("p", { class: "muted" }, "No spend in this period.")); announce("spend-status", "No spend in this period."); return; }
  const days = [...new Set(groups.map((g) => g.day))].sort();
  // Teams, users and end users are per workspace: "acme/ml" and
  // "legal/ml" are two.
  const label = (g) => (by === "team" || by === "user" || by === "end_user") && g[by] ? g.workspace + "/" + g[by] : (g[by] || "(none)");
  const names = [...new Set(groups.map(label))].sort();
  // Eight colours, then the same eight hatched, then dotted: no two
  // groups look alike up to 24 (a colour came back from the ninth).
  const color = (n) => { const i = names.indexOf(n); return "c" + (i % 8) + " p" + (Math.floor(i / 8) % 3); };
  const reqs = (n) => n + (n === 1 ? " request" : " requests");
  const perDay = days.map((day) => groups.filter((g) => g.day === day));
  const max = Math.max(...perDay.map((gs) => gs.reduce((s, g) => s + g.cost_eur, 0)), 1e-9);
  const chart = el("div", { class: "bars" }, days.map((day, i) => {
    const gs = perDay[i];
    const total = gs.reduce((s, g) => s + g.cost_eur, 0);
    // The bar is an image named with the day's amounts per group: a
    // screen reader reads them, where the segments were only colour and
    // a mouse tooltip (WCAG 1.1.1, 1.4.1).
    return el("div", { class: "bar-row" },
      el("span", { class: "bar-label" }, day),
      el("span", { class: "bar", role: "img",
        "aria-label": day + ": " + gs.map((g) => label(g) + " " + eur(g.cost_eur) + ", " + reqs(g.requests)).join("; ") + ". Total " + eur(total) + "." },
      gs.map((g) => el("span", {
        class: "seg " + color(label(g)), style: { width: (100 * g.cost_eur / max).toFixed(2) + "%" }, "aria-hidden": "true",
        title: label(g) + ": " + eur(g.cost_eur) + ", " + reqs(g.requests),
      }))),
      el("span", { class: "bar-total" }, eur(total)));
  }));
  const legend = el("div", { class: "legend" }, names.map((n) => el("span", {}, el("i", { class: "seg " + color(n), "aria-hidden": "true" }), n)));
  // The same figures as a table, day by group, for the keyboard, a
  // screen reader and without colour.
  const cell = (day, n) => { const g = perDay[days.indexOf(day)].find((x) => label(x) === n); return g ? eur(g.cost_eur) : "–"; };
  const daily = el("details", { class: "daily" }, el("summary", {}, "Cost per day and " + by + " as a table"),
    scrollRegion("Cost per day and " + by,
      el("table", { class: "daily" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "day"), names.map((n) => el("th", { scope: "col" }, n)), el("th", { scope: "col" }, "total"))),
        el("tbody", {}, days.map((day, i) => el("tr", {}, el("th", { scope: "row" }, day),
          names.map((n) => el("td", { "data-label": n }, cell(day, n))),
          el("td", { "data-label": "total" }, eur(perDay[i].reduce((s, g) => s + g.cost_eur, 0)))))))));
  const totals = names.map((n) => {
    const gs = groups.filter((g) => label(g) === n);
    return { name: n, requests: gs.reduce((s, g) => s + g.requests, 0), cost: gs.reduce((s, g) => s + g.cost_eur, 0),
      tin: gs.reduce((s, g) => s + g.tokens_in, 0), tout: gs.reduce((s, g) => s + g.tokens_out, 0) };
  });
  announce("spend-status", "Spend shown: " + days.length + (days.length === 1 ? " day, " : " days, ") + names.length + " per " + by +
    ", " + eur(totals.reduce((s, t) => s + t.cost, 0)) + " in all.");
  put(out, el("p", { class: "muted" }, "Cost per day, " + r.body.timezone + ", per " + by + "."), chart, legend, daily,
    table(totals, [[by, (t) => t.name], ["requests", (t) => t.requests], ["tokens in", (t) => t.tin],
      ["tokens out", (t) => t.tout], ["cost", (t) => eur(t.cost)]], null, "Spend per " + by + " in the period"));
}

/* ---------- budgets ---------- */

async function loadBudgets(ev) {
  if (ev) ev.preventDefault();
  const q = new URLSearchParams();
  for (const f of ["workspace", "team", "user", "key"]) if ($("budget-" + f).value.trim()) q.set(f, $("budget-" + f).value.trim());
  const out = $("budgets-out");
  put(out, loading());
  const r = await api("GET", "/admin/budgets" + (q.toString() ? "?" + q : ""));
  if (r.status !== 200) { put(out, errorBox(r)); return; }
  const b = r.body;
  const bs = b.budgets || [];
  announce("budgets-status", bs.length === 0 ? "No budget applies to this subject." :
    bs.length + (bs.length === 1 ? " budget shown: " : " budgets shown: ") + bs.filter((x) => x.exceeded).length + " exceeded, " +
    bs.filter((x) => x.warn && !x.exceeded).length + " past the warn threshold.");
  const rate = (x, label) => x && el("p", {}, label + ": " + x.remaining + " of " + x.limit + " left (" + x.name + "), resets " + when(x.resets_at));
  put(out, 
    (b.budgets || []).length === 0 ? el("p", { class: "muted" }, "No budget applies to this subject.") :
      table(b.budgets, [
        ["budget", (x) => x.name],
        ["scope", (x) => x.scope + (x.subject ? " " + x.subject : "")],
        ["period", (x) => x.period],
        ["used", (x) => el("div", { class: "meter-wrap" },
          el("span", { class: "meter " + (x.exceeded ? "bad" : x.warn ? "warn" : "good"), "aria-hidden": "true" },
            el("span", { class: "fill", style: { width: Math.min(100, 100 * x.ratio).toFixed(1) + "%" } }),
            x.warn_at && el("span", { class: "mark", style: { left: (100 * x.warn_at).toFixed(1) + "%" }, title: "warn threshold" })),
          // The percentage beside the amounts is the amounts' own; the
          // meter (ratio) counts what is reserved too.
          eur(x.used_eur) + " of " + eur(x.limit_eur) + " (" + (100 * x.used_eur / x.limit_eur).toFixed(1) + "%)")],
        ["reserved", (x) => eur(x.reserved_eur)],
        ["warn at", (x) => x.warn_at ? (100 * x.warn_at).toFixed(0) + "%" : "–"],
        ["when exceeded", (x) => x.action === "downgrade" ? "downgrade" : "refuse (429)"],
        ["state", (x) => el("span", { class: "verdict " + (x.exceeded ? "excluded" : x.warn ? "warn" : "eligible") },
          x.exceeded ? "exceeded" : x.warn ? "past warn threshold" : "ok")],
        ["resets", (x) => whenEl(x.resets_at)],
      ], null, "Budgets"),
    rate(b.requests, "Requests"), rate(b.tokens, "Tokens"));
}

/* ---------- keys ---------- */

// The Keys tab shows the keys a page of KEYS_PAGE at a time, in the order
// of their ids, as GET /admin/keys answers them; "More keys" appends the
// next page. The filters are the API's, applied by the server: the tab
// fetched every key and drew one table (50,000 keys: 48 s until the last
// row, the data-volume probe).
const KEYS_PAGE = 100;
const KEY_COLS = [
  ["id", (k) => k.id],
  ["prefix", (k) => el("code", {}, k.prefix)],
  ["workspace", (k) => k.workspace],
  ["team / user", (k) => [k.team, k.user].filter(Boolean).join(" / ")],
  ["models", (k) => (k.models || []).join(", ") || "all"],
  ["status", (k) => el("span", { class: "verdict " + k.status }, k.status)],
  ["created", (k) => whenEl(k.created_at)],
  ["expires", (k) => k.expires_at ? whenEl(k.expires_at) : "never"],
  ["", (k) => k.status === "active" && document.body.dataset.role === "admin" ? revokeButton(k.id) : ""],
];

function keyRow(k) {
  return el("tr", { "data-key-id": k.id }, KEY_COLS.map(([label, fn]) => el("td", { "data-label": label }, fn(k))));
}

// keysLoads counts loads of the tab: a page answered after a newer load
// (another filter, a revoke) is dropped.
let keysLoads = 0;

async function loadKeys(ev) {
  if (ev) ev.preventDefault();
  const mine = ++keysLoads;
  const out = $("keys-out");
  put(out, loading());
  const q = new URLSearchParams({ limit: String(KEYS_PAGE) });
  for (const f of ["workspace", "team", "user", "status"]) {
    const v = $("keys-filter-" + f).value.trim();
    if (v) q.set(f, v);
  }
  const r = await api("GET", "/admin/keys?" + q);
  if (mine !== keysLoads) return;
  if (r.status !== 200) { put(out, errorBox(r)); return; }
  const first = r.body.data || [];
  if (first.length === 0) {
    const none = [...q.keys()].length > 1 ? "No key matches these filters." : "Nothing yet.";
    put(out, el("p", { class: "muted" }, none));
    announce("keys-status", none);
    return;
  }
  const tbody = el("tbody", {}, first.map(keyRow));
  const count = el("p", { class: "muted", id: "keys-count", "aria-live": "polite" });
  const more = el("button", { type: "button", id: "keys-more" }, "More keys");
  let shownKeys = first.length;
  let cursor = r.body.next_cursor;
  const counted = (hasMore) => {
    count.replaceChildren(shownKeys + (shownKeys === 1 ? " key" : " keys") + (hasMore ? " shown; more match." : "."));
    more.hidden = !hasMore;
  };
  counted(r.body.has_more);
  announce("keys-status", count.textContent);
  // aria-disabled and a flag, not disabled: the focus stays on the button.
  let fetching = false;
  more.addEventListener("click", async () => {
    if (fetching) return;
    fetching = true;
    more.setAttribute("aria-disabled", "true");
    q.set("cursor", cursor);
    const p = await api("GET", "/admin/keys?" + q);
    if (mine !== keysLoads) return;
    fetching = false;
    more.removeAttribute("aria-disabled");
    if (p.status !== 200) { count.replaceChildren(errorBox(p)); return; }
    const next = p.body.data || [];
    const rows = next.map(keyRow);
    tbody.append(...rows);
    shownKeys += next.length;
    cursor = p.body.next_cursor;
    counted(p.body.has_more);
    // The button hides when nothing more matches: the first new row's id
    // takes the focus (it reads on from where the user was).
    if (more.hidden && rows.length) focusOn(rows[0].firstChild);
  });
  put(out, scrollRegion("Virtual keys", el("table", {},
    el("thead", {}, el("tr", {}, KEY_COLS.map(([label]) => headCell(label)))), tbody)), count, more);
}

// revokeButton asks once more before revoking: the key stops working at
// once for every client that holds it. The question stays until the
// focus leaves the button or Escape is pressed, with no time limit (WCAG
// 2.2.1; it went back after a silent 5 s), is written beside the button
// and said in the panel's status line (4.1.3). The button is named with
// its key (2.4.6): a list of a hundred "Revoke" buttons told nothing.
function revokeButton(id) {
  const name = "Revoke key " + id;
  const b = el("button", { type: "button", class: "danger revoke", "aria-label": name }, "Revoke");
  const hint = el("span", { class: "revoke-hint", hidden: true }, "Press again to revoke key " + id + ". Esc cancels.");
  let busy = false;
  const reset = () => {
    if (busy || !b.classList.contains("confirm")) return;
    b.classList.remove("confirm");
    b.textContent = "Revoke";
    b.setAttribute("aria-label", name);
    hint.hidden = true;
  };
  b.addEventListener("blur", reset);
  b.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape" || !b.classList.contains("confirm")) return;
    reset();
    announce("keys-status", "Key " + id + " not revoked.");
  });
  b.addEventListener("click", async () => {
    if (busy) return;
    if (!b.classList.contains("confirm")) {
      b.classList.add("confirm");
      b.textContent = "Confirm revoke";
      b.setAttribute("aria-label", "Confirm revoke of key " + id);
      hint.hidden = false;
      announce("keys-status", "Press again to revoke key " + id + ": it stops working at once for every client. Escape cancels.");
      return;
    }
    busy = true;
    b.setAttribute("aria-disabled", "true");
    const r = await api("POST", "/admin/keys/" + encodeURIComponent(id) + "/revoke");
    if (r.status !== 200) { const e = errorBox(r); hint.remove(); b.replaceWith(e); focusOn(e); return; }
    await loadKeys();
    // The table was drawn anew: the key's status cell ("revoked") takes
    // the focus, or the panel's heading when a filter hides the row.
    announce("keys-status", "Key " + id + " revoked.");
    focusOn(document.querySelector('#keys-out tr[data-key-id="' + CSS.escape(id) + '"] td[data-label="status"]') || panelHeading());
  });
  return [b, hint];
}

async function createKey(ev) {
  ev.preventDefault();
  const body = { id: $("key-id").value.trim() };
  for (const f of ["workspace", "team", "user"]) if ($("key-" + f).value.trim()) body[f] = $("key-" + f).value.trim();
  const models = $("key-models").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (models.length) body.models = models;
  const r = await api("POST", "/admin/keys", body);
  const box = $("key-secret");
  if (r.status !== 201) { put(box, errorBox(r)); return; }
  put(box, el("div", { class: "card secret" },
    el("p", {}, "Key ", el("strong", {}, r.body.key.id), " created. Copy its secret now: it is shown only once."),
    el("code", { class: "secret-value" }, r.body.secret)));
  $("key-create").reset();
  loadKeys();
}

/* ---------- routes ---------- */

async function loadRoutes() {
  const out = $("routes-out");
  put(out, loading());
  const r = await api("GET", "/admin/routes");
  if (r.status !== 200) { put(out, errorBox(r)); return; }
  const rows = r.body.data || [];
  announce("routes-status", rows.length === 0 ? "No named routes yet." : rows.length + (rows.length === 1 ? " route." : " routes."));
  put(out, rows.length === 0 ? el("p", { class: "muted" }, "No named routes yet (docs/routes.md).") :
    table(rows, [
      ["route", (x) => el("strong", {}, x.name)],
      ["live version", (x) => x.live ? "v" + x.live : "none"],
      ["latest", (x) => "v" + x.latest],
      ["versions", (x) => String(x.version_count)],
      ["deployed", (x) => x.deployed_at ? when(x.deployed_at) + (x.deployed_by ? " by " + x.deployed_by : "") : "–"],
      ["", (x) => el("button", { type: "button", class: "ghost", "aria-label": "Versions of route " + x.name, onclick: () => showRoute(x.name) }, "Versions")],
    ], (x) => ({ "data-route": x.name }), "Routes"));
}

async function showRoute(name) {
  const out = $("route-detail");
  const r = await api("GET", "/admin/routes/" + encodeURIComponent(name));
  if (r.status !== 200) { put(out, errorBox(r)); return; }
  const traffic = r.body.traffic || [];
  const head = el("h3", { tabindex: "-1" }, "Route " + name + ": versions");
  put(out, head,
    table(r.body.versions || [], [
      ["version", (v) => "v" + v.version + (v.live ? " (live)" : "")],
      ["created", (v) => whenEl(v.created_at)],
      ["author", (v) => v.author],
      ["source", (v) => v.source || ""],
      ["message", (v) => v.message || ""],
      ["hash", (v) => el("code", {}, (v.hash || "").slice(0, 12))],
    ], null, "Versions of route " + name),
    el("h3", {}, "Deploys"),
    table(r.body.deploys || [], [
      ["when", (d) => whenEl(d.at)], ["action", (d) => d.action], ["by", (d) => d.by],
      ["from", (d) => d.from ? "v" + d.from : "–"], ["to", (d) => "v" + d.to],
    ], null, "Deploys of route " + name),
    traffic.length > 0 && el("h3", {}, "Traffic per version and arm (since this server started)"),
    traffic.length > 0 && table(traffic, [
      ["version", (x) => "v" + x.version], ["arm", (x) => x.arm || "–"], ["requests", (x) => String(x.requests)],
      ["errors", (x) => String(x.errors)], ["cost", (x) => eur(x.cost_micro_eur / 1e6)],
      ["mean latency", (x) => x.requests ? Math.round(x.latency_sum_ns / x.requests / 1e6) + " ms" : "–"],
    ], null, "Traffic of route " + name));
  // The versions appear below the table: the focus goes to their heading.
  focusOn(head);
}

/* ---------- providers ---------- */

// scopeState is one health scope's line: whose it is (the provider, a
// model's rate limit, a workspace's own key) and its state.
function scopeState(h, now) {
  let who = h.scope === "rate_limit" ? "rate limit" + (h.model ? " of " + h.model : "") : "provider";
  if (h.workspace) who += " (workspace " + h.workspace + "'s key)";
  if (h.cooling_until && new Date(h.cooling_until) > now) {
    return el("span", { class: "verdict excluded" }, who + ": cooling down until " + when(h.cooling_until));
  }
  if (h.reopened_by && new Date(h.reopened_by) > now) {
    return el("span", { class: "verdict warn" }, who + ": reopening, in full by " + when(h.reopened_by));
  }
  return el("span", { class: "verdict warn" }, who + ": serving, " + (h.consecutive_failures || 0) + " recent failure(s)");
}

async function loadProviders() {
  const out = $("providers-out");
  put(out, loading());
  const [r, l] = await Promise.all([api("GET", "/status"), api("GET", "/admin/providers")]);
  if (r.status !== 200) { put(out, errorBox(r)); return; }
  // /status has one entry per scope: the provider's outage, each
  // credential's rate limit (a model's, a workspace's own key). All are
  // shown; the worst decides the verdict.
  const health = new Map();
  for (const p of r.body.providers || []) {
    if (!health.has(p.provider)) health.set(p.provider, []);
    health.get(p.provider).push(p);
  }
  // Every configured provider when the server lists them; else only those
  // /status knows about (recent failures or a cooldown).
  const names = l.status === 200 ? (l.body.data || []).map((p) => p.provider) : [...health.keys()];
  const clusters = new Map(l.status === 200 ? (l.body.data || []).map((p) => [p.provider, p]) : []);
  const now = Date.now();
  const secs = (ns) => ns ? (ns / 1e9) + " s" : "default";
  put(out, 
    el("p", { class: "muted" }, "Health is what stellwerk saw of each provider's answers: consecutive failures, and a cooldown after repeated ones, during which requests go to the next allowed model."),
    table(names.map((n) => ({ name: n, hs: health.get(n) || [], c: clusters.get(n) || {} })), [
      ["provider", (p) => el("strong", {}, p.name)],
      ["health", (p) => p.c.credential === "missing" ?
        el("span", { class: "verdict excluded" }, "no credential configured: requests to it are refused") :
        p.hs.length === 0 ? el("span", { class: "verdict eligible" }, "healthy") :
        el("div", {}, p.hs.map((h) => el("div", {}, scopeState(h, now))))],
      ["last failure", (p) => p.hs.map((h) => h.reason).filter(Boolean).join("; ")],
      ["endpoints", (p) => (p.c.endpoints || []).map((e) => e.address).join(", ") || "base URL"],
      ["per-try timeout", (p) => p.c.cluster ? secs(p.c.cluster.per_try_timeout) : ""],
      ["live override", (p) => p.c.override ? "yes" : "no"],
    ], (p) => ({ "data-provider": p.name }), "Providers"),
    el("h3", {}, "Envoy"),
    kv({ xds_snapshot: r.body.snapshot_version, connected_envoys: r.body.envoy_streams, last_rejection: r.body.last_rejection || "none" }),
    Array.isArray(r.body.envoy_nodes) && r.body.envoy_nodes.length > 0 &&
      table(r.body.envoy_nodes, [
        ["node", (n) => n.node + " (stream " + n.stream + ")"],
        ["accepted", (n) => n.acked_version ? "all types: " + n.acked_version :
          Object.entries(n.types || {}).sort().map(([t, v]) => t + " " + (v.acked || "none") + (v.sent && v.sent !== v.acked ? " (sent " + v.sent + ")" : "")).join(", ")],
        ["refused", (n) => (n.rejections || []).length === 0 ? "nothing" :
          el("span", { class: "error" }, n.rejections.map((x) => x.type + " " + x.version + ": " + x.error).join("; "))],
      ], null, "Envoy nodes"));
}

/* ---------- policy ---------- */

async function loadPolicy() {
  const out = $("policy-out");
  put(out, loading());
  const [p, s] = await Promise.all([api("GET", "/policy"), api("GET", "/status")]);
  if (p.status !== 200) { put(out, errorBox(p)); return; }
  const pol = p.body;
  const last = pol.last_error ? el("p", { class: "error" }, "Last reload refused: " + pol.last_error) :
    el("p", { class: "good-text" }, "Last reload: accepted" + (pol.last_check_at ? " (checked " + when(pol.last_check_at) + ")" : "") + ".");
  put(out, 
    el("h3", {}, "Active policy"),
    kv({ version: pol.version, loaded_at: when(pol.loaded_at), library: pol.library ? "shipped library" : "own only", dir: pol.dir,
      modules: (pol.modules || []).join(", "), refused_version: pol.refused_version }),
    last,
    s.status === 200 && el("h3", {}, "Configuration"),
    s.status === 200 && kv({ stellwerk: s.body.version, config_error: s.body.config_error || "none",
      config_error_at: s.body.config_error ? when(s.body.config_error_at) : "" }),
    s.status === 200 && s.body.audit && el("h3", {}, "Audit log"),
    s.status === 200 && s.body.audit && kv(s.body.audit),
    s.status === 200 && s.body.key_store && el("h3", {}, "Key store"),
    s.status === 200 && s.body.key_store && kv(s.body.key_store));
}

/* ---------- wiring ---------- */

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("token").value.trim(), true); });
  $("logout").addEventListener("click", () => signOut(""));
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.tab));
  $("tabs").addEventListener("keydown", tabKeys);
  $("live-pause").addEventListener("click", () => { paused = !paused; $("live-pause").textContent = paused ? "Resume" : "Pause"; });
  $("live-clear").addEventListener("click", () => { put($("live-list")); $("live-dropped").textContent = ""; });
  $("try-form").addEventListener("submit", sendTry);
  $("spend-form").addEventListener("submit", loadSpend);
  $("budgets-form").addEventListener("submit", loadBudgets);
  $("key-create").addEventListener("submit", createKey);
  $("keys-filter").addEventListener("submit", loadKeys);
  $("try-key").value = sessionStorage.getItem(TRYKEY) || "";
  if (token()) signIn(token());
});
