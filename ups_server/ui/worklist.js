// The worklist page: rows, tabs, filters, counts, paging, actions, live updates.
import { Api, claims } from "/ui/api.js";
import { setUpAuth } from "/ui/auth.js";
import { Live } from "/ui/live.js";

const $ = (id) => document.getElementById(id);
const STATES = ["SCHEDULED", "IN PROGRESS", "COMPLETED", "CANCELED"];
const FINAL = ["COMPLETED", "CANCELED"];
const view = { tab: "available", cursors: [null], page: 0, next: null };
let api, auth, config;

function say(text, kind = "ok") {
  const m = $("message");
  m.textContent = text;
  m.dataset.kind = kind;
}

function dicomName(name) {
  return (name || "").split("^").filter(Boolean).join(", ");
}

function age(iso) {
  if (!iso) return "";
  const minutes = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 60000));
  if (minutes < 60) return `${minutes} min`;
  if (minutes < 48 * 60) return `${Math.round(minutes / 60)} h`;
  return `${Math.round(minutes / 1440)} d`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : "";
}

function studyDate(da) {
  return da && da.length === 8 ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6)}` : (da || "");
}

function filters() {
  return { worklist: $("f-worklist").value, priority: $("f-priority").value, state: $("f-state").value,
    q: $("f-text").value.trim(), sort: $("f-sort").value };
}

function reader() {
  return auth.reader();
}

function needReader() {
  if (reader()) return true;
  say(config.auth === "oidc" ? "Sign in first." : "Enter your name in the Reader field first.", "error");
  (config.auth === "oidc" ? $("sign-in") : $("reader")).focus();
  return false;
}

function viewerLink(row) {
  const values = { StudyInstanceUID: row.study_uid, AccessionNumber: row.accession_number, PatientID: row.patient_id };
  return config.viewer_url.replace(/\{(\w+)\}/g, (_, key) => encodeURIComponent(values[key] || ""));
}

function button(text, handler, { primary = false, danger = false, describedBy } = {}) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  if (primary) b.className = "primary";
  if (danger) b.className = "danger";
  if (describedBy) b.setAttribute("aria-describedby", describedBy);
  b.addEventListener("click", handler);
  return b;
}

function actionsFor(row, labelId) {
  const td = document.createElement("td");
  const cell = document.createElement("div");
  cell.className = "actions";
  td.append(cell);
  const me = reader();
  const admin = auth.roles().includes("admin");
  const opts = { describedBy: labelId };
  if (row.state === "SCHEDULED") cell.append(button("Claim", () => act(() => claimRow(row)), { ...opts, primary: true }));
  if (config.viewer_url && row.study_uid) {
    const open = document.createElement("a");
    open.href = viewerLink(row);
    open.target = "_blank";
    open.rel = "noopener";
    open.textContent = "Open";
    open.setAttribute("role", "button");
    open.className = "link-button";
    open.setAttribute("aria-describedby", labelId);
    cell.append(open);
  }
  const mine = row.state === "IN PROGRESS" && row.holder === me && claims.get(row.uid);
  if (mine) {
    cell.append(button("Complete", () => openComplete(row), { ...opts, primary: true }));
    cell.append(button("Skip", () => act(() => skipRow(row)), opts));
  }
  if (admin && !FINAL.includes(row.state)) {
    cell.append(button("Cancel", () => act(() => cancelRow(row)), { ...opts, danger: true }));
    cell.append(button("Reassign", () => openReassign(row), opts));
  }
  return td;
}

function render(page) {
  const body = $("rows");
  body.replaceChildren();
  const cell = (text, className) => {
    const td = document.createElement("td");
    td.textContent = text ?? "";
    if (className) td.className = className;
    return td;
  };
  for (const row of page.rows) {
    const tr = document.createElement("tr");
    tr.dataset.uid = row.uid;
    const labelId = `label-${row.uid}`;
    const label = cell(row.label);
    label.id = labelId;
    tr.append(cell(dicomName(row.patient_name)), cell(row.patient_id), cell(row.accession_number),
      cell(studyDate(row.study_date)), label, cell(row.worklist_label), cell(row.priority, `prio-${row.priority}`),
      cell(row.state), cell(when(row.scheduled)), cell(age(row.created)), cell(row.input_readiness),
      cell(row.holder), actionsFor(row, labelId));
    body.append(tr);
  }
  if (!page.rows.length) {
    const tr = document.createElement("tr");
    const td = cell("Nothing here.");
    td.colSpan = 13;
    tr.append(td);
    body.append(tr);
  }
  const counts = $("counts");
  counts.replaceChildren();
  for (const state of STATES) {
    const li = document.createElement("li");
    const more = (page.capped || []).includes(state) ? "+" : "";
    const b = button(`${state.toLowerCase()}: ${page.counts[state]}${more}`, () => {
      $("f-state").value = $("f-state").value === state ? "" : state;
      reload(true);
    });
    b.setAttribute("aria-pressed", String($("f-state").value === state));
    b.dataset.state = state;
    li.append(b);
    counts.append(li);
  }
  view.next = page.next;
  $("next-page").disabled = !page.next;
  $("prev-page").disabled = view.page === 0;
  $("page-info").textContent = `Page ${view.page + 1}`;
  $("worklist-caption").textContent = `Workitems: ${$(`tab-${view.tab}`).textContent}`;
}

let loading = null;
let again = false;

/** Load the current page (coalescing bursts of events into one request at a time). */
async function reload(first = false) {
  if (first) Object.assign(view, { cursors: [null], page: 0 });
  if (loading) { again = true; return loading; }
  loading = (async () => {
    do {
      again = false;
      const params = { tab: view.tab, limit: "50", ...Object.fromEntries(Object.entries(filters()).filter(([, v]) => v)) };
      if (reader()) params.reader = reader();
      if (view.tab === "mine" && !params.reader) {
        render({ rows: [], counts: Object.fromEntries(STATES.map((s) => [s, 0])), next: null });
        continue;
      }
      const cursor = view.cursors[view.page];
      if (cursor) params.after = cursor;
      try {
        render(await api.worklist(params));
      } catch (err) {
        say(`Could not load the worklist: ${err.message}`, "error");
      }
    } while (again);
  })();
  try { await loading; } finally { loading = null; }
}

async function act(action) {
  if (!needReader()) return;
  try {
    await action();
  } catch (err) {
    say(err.message, "error");
  }
  await reload();
}

async function claimRow(row) {
  await api.claim(row.uid, reader());
  say(`Claimed ${row.label}.`);
}

async function skipRow(row) {
  await api.skip(row.uid);
  say(`Skipped ${row.label}: it is back in the pool.`);
}

async function cancelRow(row) {
  if (!confirm(`Cancel ${row.label}?`)) return;
  await api.cancel(row.uid, reader());
  say(row.state === "SCHEDULED" ? `Canceled ${row.label}.` : `Cancellation of ${row.label} requested from its reader.`);
}

let completing = null;

function openComplete(row) {
  completing = row;
  $("complete-subject").textContent = `${row.label} · ${dicomName(row.patient_name)} · ${row.accession_number || ""}`;
  $("complete-comment").value = "";
  $("complete-form").querySelectorAll("input[name=outcome]").forEach((r) => { r.checked = false; });
  $("complete-dialog").showModal();
}

async function submitComplete(event) {
  event.preventDefault();
  const chosen = $("complete-form").querySelector("input[name=outcome]:checked");
  if (!chosen) { $("complete-form").querySelector("input[name=outcome]")?.focus(); return; }
  const result = config.results[Number(chosen.value)];
  const row = completing;
  $("complete-dialog").close();
  await act(async () => {
    await api.complete(row.uid, reader(), result, $("complete-comment").value.trim());
    say(`Completed ${row.label}: ${result.meaning}.`);
  });
}

let reassigning = null;

function openReassign(row) {
  reassigning = row;
  $("reassign-subject").textContent = `${row.label} · held by ${row.holder || "nobody"}`;
  $("reassign-reader").value = "";
  $("reassign-dialog").showModal();
}

async function submitReassign(event) {
  event.preventDefault();
  const to = $("reassign-reader").value.trim();
  if (!to) return;
  const row = reassigning;
  $("reassign-dialog").close();
  await act(async () => {
    await api.reassign(row.uid, to);
    say(`${row.label} is now scheduled for ${to}.`);
  });
}

async function claimNext() {
  await act(async () => {
    const got = await api.claimNext(reader(), filters());
    if (!got) { say("Nothing to claim.", "error"); return; }
    say(`Claimed ${got.label}.`);
    selectTab("mine", false);
  });
}

function selectTab(tab, load = true) {
  view.tab = tab;
  for (const t of document.querySelectorAll("[role=tab]")) {
    const on = t.dataset.tab === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
  }
  $("worklist").setAttribute("aria-labelledby", `tab-${tab}`);
  view.cursors = [null];
  view.page = 0;
  if (load) reload(true);
}

function wireTabs() {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  tabs.forEach((t, i) => {
    t.addEventListener("click", () => selectTab(t.dataset.tab));
    t.addEventListener("keydown", (e) => {  // arrow keys move between tabs (WAI-ARIA tabs pattern)
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      next.focus();
      selectTab(next.dataset.tab);
    });
  });
  if (!auth.roles().includes("admin")) $("tab-all").hidden = true;
}

function outcomes() {
  const set = $("outcomes");
  config.results.forEach((r, i) => {
    const label = document.createElement("label");
    const input = document.createElement("input");
    Object.assign(input, { type: "radio", name: "outcome", value: String(i), required: true });
    label.append(input, ` ${r.meaning}`);
    set.append(label);
  });
  if (!config.results.length) set.append("No result codes are declared in the rule file (results:).");
}

async function main() {
  config = await (await fetch("/ui/config.json")).json();
  try {
    auth = await setUpAuth(config, { reader: $("reader"), signIn: $("sign-in"), signOut: $("sign-out"),
      signedIn: $("signed-in") });
  } catch (err) {
    say(err.message, "error");
    return;
  }
  if (config.auth === "oidc" && !reader()) {
    say("Sign in to see your worklist.");
    $("claim-next").disabled = true;
    return;
  }
  api = new Api(config, auth);
  outcomes();
  wireTabs();
  selectTab(reader() ? "mine" : "available", false);
  $("reader").addEventListener("change", () => reload(true));
  $("filters").addEventListener("input", () => reload(true));
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); reload(true); });
  $("claim-next").addEventListener("click", claimNext);
  $("complete-form").addEventListener("submit", submitComplete);
  $("complete-close").addEventListener("click", () => $("complete-dialog").close());
  $("reassign-form").addEventListener("submit", submitReassign);
  $("reassign-close").addEventListener("click", () => $("reassign-dialog").close());
  $("next-page").addEventListener("click", () => {
    if (!view.next) return;
    view.cursors[view.page + 1] = view.next;
    view.page += 1;
    reload();
  });
  $("prev-page").addEventListener("click", () => {
    if (view.page === 0) return;
    view.page -= 1;
    reload();
  });
  try {
    for (const label of await api.worklistLabels()) $("f-worklist").append(new Option(label, label));
  } catch { /* the filter stays "Any" */ }
  await reload(true);
  new Live(api, () => reload(), (state, text) => { $("live").dataset.state = state; $("live").textContent = text; }).start();
}

main();
