// Reader statistics: GET /admin/stats as tables, and its CSV as a download.
import { Api } from "/ui/api.js";
import { setUpAuth } from "/ui/auth.js";

const $ = (id) => document.getElementById(id);
const COLUMNS = [
  ["reads_completed", "Reads completed", (v) => String(v)],
  ["median_seconds", "Median time per read", minutes],
  ["first_reads", "First reads", (v) => String(v)],
  ["second_reads", "Second reads", (v) => String(v)],
  ["arbitration_share", "Sent to arbitration", percent],
  ["agreement", "Agreement with the other read", percent],
];

function minutes(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return seconds < 90 ? `${Math.round(seconds)} s` : `${(seconds / 60).toFixed(1)} min`;
}

function percent(share) {
  return share === null || share === undefined ? "–" : `${Math.round(share * 100)} %`;
}

function table(window) {
  const t = document.createElement("table");
  const caption = t.createCaption();
  caption.textContent = `Last ${window.days} days`;
  const head = t.createTHead().insertRow();
  for (const text of ["Reader", ...COLUMNS.map((c) => c[1])]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = text;
    if (text !== "Reader") th.className = "num";
    head.append(th);
  }
  const body = t.createTBody();
  for (const [name, figures] of [...window.readers.map((r) => [r.reader || "(anonymous)", r]), ["All readers", window.overall]]) {
    const tr = body.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = name;
    tr.append(th);
    for (const [key, , format] of COLUMNS) {
      const td = tr.insertCell();
      td.className = "num";
      td.textContent = format(figures[key]);
    }
  }
  return t;
}

async function main() {
  const config = await (await fetch("/ui/config.json")).json();
  let auth;
  try {
    auth = await setUpAuth(config, { reader: $("reader"), signIn: $("sign-in"), signOut: $("sign-out"),
      signedIn: $("signed-in") });
  } catch (err) {
    $("message").textContent = err.message;
    return;
  }
  if (config.auth === "oidc" && !auth.reader()) {
    $("message").textContent = "Sign in to see the statistics (admin role).";
    $("download").disabled = true;
    return;
  }
  const api = new Api(config, auth);
  $("download").addEventListener("click", async () => {
    try {
      const blob = await api.statsCsv();
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = "reader-statistics.csv";
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    } catch (err) {
      $("message").dataset.kind = "error";
      $("message").textContent = `Could not download: ${err.message}`;
    }
  });
  try {
    const stats = await api.stats();
    $("windows").replaceChildren(...stats.windows.map(table));
  } catch (err) {
    $("message").dataset.kind = "error";
    $("message").textContent = `Could not load the statistics: ${err.message}`;
  }
}

main();
