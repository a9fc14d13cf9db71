// Live updates: `GET /api/events` read with `fetch` streaming (EventSource cannot send the
// Authorization header). Reconnects with `Last-Event-ID` after a drop, so nothing is missed.

/** An incremental parser of the `text/event-stream` format (WHATWG HTML §9.2.6). */
export class SseParser {
  constructor() {
    this.buffer = "";
    this.event = "";
    this.data = [];
    this.id = null;
  }

  /** Feed decoded text; returns the events completed by it as `{event, data, id}`. */
  push(text) {
    // A chunk ending in "\r" may be half of a "\r\n": keep it until the next chunk says.
    const held = (this.buffer + text).endsWith("\r") ? "\r" : "";
    const lines = (this.buffer + text).slice(0, held ? -1 : undefined).split(/\r\n|\r|\n/);
    this.buffer = lines.pop() + held;
    const events = [];
    for (const line of lines) {
      if (line === "") {
        if (this.data.length) events.push({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
        this.event = "";
        this.data = [];
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") this.event = value;
        else if (field === "data") this.data.push(value);
        else if (field === "id" && !value.includes("\0")) this.id = value;
      }
    }
    return events;
  }
}

const BACKOFF_MS = [500, 1000, 2000, 5000, 10000];
const wait = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

/**
 * Follow the caller's live events until `close()`.
 * @param {object} options
 * @param {import("./api.js").ApiClient} options.api the client (its token and fetch are used)
 * @param {(event: string, data: object) => void} options.onEvent `trip`, `trip_removed` or `reset`
 * @param {(status: string) => void} [options.onStatus] `live` once connected, `offline` while retrying
 * @param {Function} [options.sleep] how to wait between attempts (tests pass a fake)
 * @returns {{close: () => void}}
 */
export function followEvents({ api, onEvent, onStatus = () => {}, sleep = wait }) {
  const controller = new AbortController();
  let lastId = null;
  let failures = 0;

  async function once() {
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${api.token}` };
    if (lastId) headers["Last-Event-ID"] = lastId;
    const response = await api.fetchImpl("/api/events", { headers, signal: controller.signal });
    if (response.status === 401) {
      api.onUnauthorized(new Error("session ended"));
      controller.abort();
      return;
    }
    if (!response.ok || !response.body) throw new Error(`events: HTTP ${response.status}`);
    onStatus("live");
    failures = 0;
    const parser = new SseParser();
    const decoder = new TextDecoder();
    const reader = response.body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const item of parser.push(decoder.decode(value, { stream: true }))) {
        if (item.id) lastId = item.id;
        let data = null;
        try {
          data = JSON.parse(item.data);
        } catch {
          // a frame without JSON data (none are sent today): pass it on as null
        }
        onEvent(item.event, data);
      }
    }
  }

  (async () => {
    while (!controller.signal.aborted) {
      try {
        await once();
      } catch {
        // dropped or refused: retry below unless closed
      }
      if (controller.signal.aborted) break;
      onStatus("offline");
      await sleep(BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)], controller.signal);
      failures += 1;
    }
  })();

  return { close: () => controller.abort() };
}
