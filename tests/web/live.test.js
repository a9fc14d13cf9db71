import { describe, expect, it, vi } from "vitest";
import { ApiClient } from "../../tripsage/static/js/api.js";
import { followEvents, SseParser } from "../../tripsage/static/js/live.js";
import { fakeFetch } from "./fake.js";

describe("SseParser", () => {
  it("parses events split anywhere across chunks, with ids, comments and multi-line data", () => {
    const parser = new SseParser();
    const text =
      ': open\n\nevent: trip\nid: 7\ndata: {"id":\ndata: "t1"}\n\r\nevent: trip_removed\r\nid: 8\r\ndata:{"id":"t2"}\r\n\r\n';
    const events = [];
    for (const char of text) events.push(...parser.push(char));
    expect(events).toEqual([
      { event: "trip", data: '{"id":\n"t1"}', id: "7" },
      { event: "trip_removed", data: '{"id":"t2"}', id: "8" },
    ]);
  });

  it("defaults the event name, ignores unknown fields, a NUL id and empty events", () => {
    const parser = new SseParser();
    expect(parser.push("retry: 10\nid: a\0b\ndata\n\ndata: x\nfoo: bar\n\n\n")).toEqual([
      { event: "message", data: "", id: null },
      { event: "message", data: "x", id: null },
    ]);
    expect(parser.push("event: reset\n\n")).toEqual([]);
  });
});

function stream(...chunks) {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
}

const sse = (...chunks) => new Response(stream(...chunks), { status: 200 });

async function settle(predicate) {
  for (let i = 0; i < 100 && !predicate(); i += 1) await new Promise((r) => setTimeout(r, 1));
}

describe("followEvents", () => {
  it("sends the token, delivers events, and resumes with Last-Event-ID after a drop", async () => {
    const { fetchImpl, calls } = fakeFetch(
      sse(': hi\n\nevent: trip\nid: 3\ndata: {"id":"t1","version":2}\n\n'),
      new Error("connection reset"),
      new Response("busy", { status: 429 }),
      sse('event: trip_removed\nid: 4\ndata: {"id":"t1"}\n\nevent: odd\ndata: not json\n\n'),
    );
    const api = new ApiClient({ token: "tok", fetchImpl });
    const events = [];
    const statuses = [];
    const sleeps = [];
    const live = followEvents({
      api,
      onEvent: (event, data) => events.push([event, data]),
      onStatus: (status) => statuses.push(status),
      sleep: async (ms) => {
        sleeps.push(ms);
        if (sleeps.length === 4) live.close();
      },
    });
    await settle(() => sleeps.length >= 4);
    expect(events).toEqual([
      ["trip", { id: "t1", version: 2 }],
      ["trip_removed", { id: "t1" }],
      ["odd", null],
    ]);
    expect(calls[0].url).toBe("/api/events");
    expect(calls[0].headers).toEqual({ Accept: "text/event-stream", Authorization: "Bearer tok" });
    expect(calls.slice(1).map((c) => c.headers["Last-Event-ID"])).toEqual(["3", "3", "3"]);
    expect(statuses).toEqual(["live", "offline", "offline", "offline", "live", "offline"]);
    // backoff grows while attempts fail, and starts again after a good connection
    expect(sleeps).toEqual([500, 1000, 2000, 500]);
  });

  it("stops and signs out on 401", async () => {
    const { fetchImpl, calls } = fakeFetch(new Response(null, { status: 401 }));
    const onUnauthorized = vi.fn();
    const api = new ApiClient({ token: "old", fetchImpl, onUnauthorized });
    const sleep = vi.fn();
    followEvents({ api, onEvent: () => {}, sleep });
    await settle(() => onUnauthorized.mock.calls.length > 0);
    await new Promise((r) => setTimeout(r, 5));
    expect(onUnauthorized).toHaveBeenCalledOnce();
    expect(calls).toHaveLength(1);
    expect(sleep).not.toHaveBeenCalled();
  });

  it("waits between attempts with real timers, and close() cuts the wait short", async () => {
    const { fetchImpl, calls } = fakeFetch(new Response(null, { status: 503 }));
    const api = new ApiClient({ token: "t", fetchImpl });
    const statuses = [];
    const live = followEvents({ api, onEvent: () => {}, onStatus: (s) => statuses.push(s) });
    await settle(() => statuses.length === 1);
    await new Promise((r) => setTimeout(r, 2));
    live.close();
    await new Promise((r) => setTimeout(r, 5));
    expect(calls).toHaveLength(1);
  });
});
