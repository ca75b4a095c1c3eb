// Live updates: the UPS-RS WebSocket event channel of a global subscription for this page's
// own AE title. On every event (and after each reconnection, to catch up) the page reloads
// its rows; with no WebSocket it polls.

const AET_KEY = "ups-ui.aet";
const POLL_MS = 5000;
const MAX_BACKOFF_MS = 10000;

/** This browser's AE title: "UI" and 14 hex digits, kept in localStorage. */
export function pageAet() {
  let aet = localStorage.getItem(AET_KEY);
  if (!aet) {
    aet = "UI" + Array.from(crypto.getRandomValues(new Uint8Array(7)), (b) => b.toString(16).padStart(2, "0")).join("");
    localStorage.setItem(AET_KEY, aet);
  }
  return aet;
}

export class Live {
  constructor(api, onChange, onStatus) {
    this.api = api;
    this.onChange = onChange;  // (event or null) -> reload
    this.onStatus = onStatus;  // ("live" | "connecting" | "polling" | "down", text)
    this.aet = pageAet();
    this.backoff = 500;
    this.timer = null;
  }

  start() {
    addEventListener("pagehide", () => { this.stopped = true; this.socket?.close(); this.api.unsubscribe(this.aet); });
    if (!("WebSocket" in window)) return this.poll();
    return this.connect();
  }

  async connect() {
    this.onStatus("connecting", "Connecting…");
    let url;
    try {
      url = await this.api.subscribe(this.aet);
    } catch (err) {
      return this.retry(`Live updates unavailable (${err.message})`);
    }
    const token = await this.api.auth?.token();
    if (token) url += `${url.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(token)}`;
    const socket = new WebSocket(url);
    this.socket = socket;
    let opened = false;
    socket.addEventListener("open", () => {
      opened = true;
      this.backoff = 500;
      this.stopPolling();
      this.onStatus("live", "Live");
      this.onChange(null);  // catch up on what happened while disconnected
    });
    socket.addEventListener("message", (message) => {
      let event = null;
      try { event = JSON.parse(message.data); } catch { /* not an event */ }
      this.onChange(event);
    });
    socket.addEventListener("close", () => {
      if (this.stopped) return;
      this.retry(opened ? "Reconnecting…" : "Live updates unavailable; polling");
    });
  }

  retry(text) {
    this.onStatus("down", text);
    this.poll();
    setTimeout(() => this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
  }

  poll() {
    if (this.timer) return;
    this.timer = setInterval(() => this.onChange(null), POLL_MS);
    if (!("WebSocket" in window)) this.onStatus("polling", `Polling every ${POLL_MS / 1000} s`);
  }

  stopPolling() {
    clearInterval(this.timer);
    this.timer = null;
  }
}
