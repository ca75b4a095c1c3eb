// The page's client of the server: UPS-RS under the DICOMweb base path (the same API as any
// client) and the page's read-only JSON under /ui/. No third-party code.

const DICOM_JSON = "application/dicom+json";
const GLOBAL_SUBSCRIPTION = "1.2.840.10008.5.1.4.34.5";
const TXN_KEY = "ups-ui.txn.";

export class ApiError extends Error {}

/** A UID under the 2.25 root from 128 random bits (a UUID version 4, as in PS3.5 B.2). */
export function newUid() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return `2.25.${n}`;
}

/** DICOM DT (local time) of a Date. */
export function dicomDateTime(date = new Date()) {
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${date.getFullYear()}${p(date.getMonth() + 1)}${p(date.getDate())}` +
    `${p(date.getHours())}${p(date.getMinutes())}${p(date.getSeconds())}`;
}

const el = (vr, ...values) => ({ vr, Value: values });
const code = (value, scheme, meaning) => ({ "00080100": el("SH", value), "00080102": el("SH", scheme),
  "00080104": el("LO", meaning || value) });

/** The Transaction UIDs of the claims made in this browser (a claim's UID is never returned by
 * retrieve or search: the performer keeps it). */
export const claims = {
  get(uid) { try { return JSON.parse(localStorage.getItem(TXN_KEY + uid)); } catch { return null; } },
  put(uid, claim) { localStorage.setItem(TXN_KEY + uid, JSON.stringify(claim)); },
  drop(uid) { localStorage.removeItem(TXN_KEY + uid); },
};

export class Api {
  constructor(config, auth) {
    this.base = config.dicomweb;
    this.auth = auth;
  }

  async request(method, url, { body, accept = DICOM_JSON, keepalive = false } = {}) {
    const headers = { Accept: accept };
    const token = this.auth && await this.auth.token();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = DICOM_JSON;
    const response = await fetch(url, { method, headers, keepalive,
      body: body === undefined ? undefined : JSON.stringify(body) });
    if (!response.ok) throw new ApiError(await reason(response));
    return response;
  }

  // ---- read-only views of the page ----
  async worklist(params) {
    const r = await this.request("GET", `/api/worklist?${new URLSearchParams(params)}`, { accept: "application/json" });
    return r.json();
  }

  async worklistLabels() {
    return (await this.request("GET", "/api/worklist-labels", { accept: "application/json" })).json();
  }

  async stats() {
    return (await this.request("GET", "/admin/stats", { accept: "application/json" })).json();
  }

  async statsCsv() {
    return (await this.request("GET", "/admin/stats?format=csv", { accept: "text/csv" })).blob();
  }

  // ---- UPS-RS ----
  workitem(uid) { return `${this.base}/workitems/${encodeURIComponent(uid)}`; }

  /** Claim: Change State to IN PROGRESS with a Transaction UID made here. */
  async claim(uid, reader) {
    const txn = newUid();
    await this.request("PUT", `${this.workitem(uid)}/state/${encodeURIComponent(reader)}`,
      { body: { "00741000": el("CS", "IN PROGRESS"), "00081195": el("UI", txn) } });
    claims.put(uid, { txn, reader, claimedAt: Date.now() });
    return txn;
  }

  /** Claim next (the server's extension): the first SCHEDULED workitem in claim order. */
  async claimNext(reader, filters) {
    const query = new URLSearchParams({ requester: reader });
    if (filters.worklist) query.set("WorklistLabel", filters.worklist);
    if (filters.priority) query.set("ScheduledProcedureStepPriority", filters.priority);
    const txn = newUid();
    const r = await this.request("POST", `${this.base}/workitems/claim?${query}`,
      { body: { "00081195": el("UI", txn) } });
    if (r.status === 204) return null;
    const ds = (await r.json())[0];
    const uid = ds["00080018"].Value[0];
    claims.put(uid, { txn, reader, claimedAt: Date.now() });
    return { uid, label: ds["00741204"]?.Value?.[0] || uid };
  }

  /** Complete: Update with the UPS Performed Procedure Sequence, then Change State COMPLETED. */
  async complete(uid, reader, result, comment) {
    const claim = claims.get(uid);
    if (!claim) throw new ApiError("this browser did not claim the read (its Transaction UID is unknown)");
    const performed = {
      "00404035": { vr: "SQ", Value: [{ "00404009": { vr: "SQ", Value: [code(reader, "99UPS_READER", reader)] },
        "00404037": el("PN", { Alphabetic: reader }) }] },
      "00404028": { vr: "SQ", Value: [code("UPS_UI", "99UPS", "ups-server reading page")] },
      "00404050": el("DT", dicomDateTime(new Date(claim.claimedAt))),
      "00404019": { vr: "SQ", Value: [code(result.value, result.scheme, result.meaning)] },
      "00404051": el("DT", dicomDateTime()),
      "00404033": { vr: "SQ" },
    };
    if (comment) performed["00400280"] = el("ST", comment);
    const txn = encodeURIComponent(claim.txn);
    await this.request("POST", `${this.workitem(uid)}?transaction-uid=${txn}`,
      { body: { "00741216": { vr: "SQ", Value: [performed] } } });
    await this.request("PUT", `${this.workitem(uid)}/state/${encodeURIComponent(reader)}`,
      { body: { "00741000": el("CS", "COMPLETED"), "00081195": el("UI", claim.txn) } });
    claims.drop(uid);
  }

  /** Skip (the server's extension): give the read back to the pool. */
  async skip(uid) {
    const claim = claims.get(uid);
    if (!claim) throw new ApiError("this browser did not claim the read (its Transaction UID is unknown)");
    await this.request("POST", `${this.workitem(uid)}/skip?transaction-uid=${encodeURIComponent(claim.txn)}`);
    claims.drop(uid);
  }

  async cancel(uid, reader) {
    await this.request("POST", `${this.workitem(uid)}/cancelrequest/${encodeURIComponent(reader)}`,
      { body: { "00741238": el("LT", `canceled on the reading page by ${reader}`) } });
  }

  async reassign(uid, reader) {
    await this.request("POST", `${this.workitem(uid)}/reassign?reader=${encodeURIComponent(reader)}`);
  }

  /** Global subscription of this page's AE; the WebSocket URL (Content-Location). */
  async subscribe(aet) {
    const r = await this.request("POST", `${this.base}/workitems/${GLOBAL_SUBSCRIPTION}/subscribers/${aet}`);
    return r.headers.get("Content-Location");
  }

  unsubscribe(aet) {
    return this.request("DELETE", `${this.base}/workitems/${GLOBAL_SUBSCRIPTION}/subscribers/${aet}`,
      { keepalive: true }).catch(() => {});
  }
}

async function reason(response) {
  let text = "";
  try {
    const body = await response.clone().json();
    text = body.message || "";
  } catch { /* not JSON */ }
  const warning = response.headers.get("Warning");
  if (warning) text = text || warning.replace(/^\d{3} \S+ /, "").replace(/^"|"$/g, "");
  return `${response.status}: ${text || response.statusText}`;
}
