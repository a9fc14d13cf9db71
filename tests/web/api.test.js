import { describe, expect, it, vi } from "vitest";
import { ApiClient, ApiError, etagVersion, NetworkError, newKey, versionEtag } from "../../tripsage/static/js/api.js";
import { fakeFetch, json, trip } from "./fake.js";

const client = (...answers) => {
  const fake = fakeFetch(...answers);
  const onUnauthorized = vi.fn();
  const api = new ApiClient({ token: "tok", fetchImpl: fake.fetchImpl, onUnauthorized });
  return { api, calls: fake.calls, onUnauthorized };
};

describe("headers", () => {
  it("sends the bearer token and asks for JSON on every call", async () => {
    const { api, calls } = client(json(200, { id: "u1" }));
    await api.me();
    expect(calls[0].url).toBe("/api/users/me");
    expect(calls[0].method).toBe("GET");
    expect(calls[0].headers.Authorization).toBe("Bearer tok");
    expect(calls[0].headers.Accept).toBe("application/json");
    expect(calls[0].headers["Idempotency-Key"]).toBeUndefined();
    expect(calls[0].body).toBeUndefined();
  });

  it("sends no Authorization for the demo session", async () => {
    const { api, calls } = client(json(200, { access_token: "x" }));
    expect(await api.demoSession()).toEqual({ access_token: "x" });
    expect(calls[0].headers.Authorization).toBeUndefined();
    expect(calls[0].headers["Idempotency-Key"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("falls back to the global fetch", async () => {
    const spy = vi.spyOn(globalThis, "fetch").mockResolvedValue(json(200, { id: "u" }));
    expect(await new ApiClient({ token: "t" }).me()).toEqual({ id: "u" });
    expect(spy).toHaveBeenCalledOnce();
    spy.mockRestore();
  });
});

describe("idempotency keys", () => {
  it("gives every POST a fresh key unless the caller passes one", async () => {
    const { api, calls } = client(
      json(201, trip(), { ETag: '"1"' }),
      json(201, trip(), { ETag: '"1"' }),
      json(201, trip(), { ETag: '"1"' }),
      json(201, trip(), { ETag: '"1"' }),
    );
    await api.createTrip({ title: "a" });
    await api.createTrip({ title: "a" });
    await api.createTrip({ title: "a" }, { idempotencyKey: "form-key" });
    await api.createTrip({ title: "a" }, { idempotencyKey: "form-key" });
    const keys = calls.map((c) => c.headers["Idempotency-Key"]);
    expect(keys[0]).not.toBe(keys[1]);
    expect(keys.slice(2)).toEqual(["form-key", "form-key"]);
    expect(calls[0].headers["Content-Type"]).toBe("application/json");
    expect(JSON.parse(calls[0].body)).toEqual({ title: "a" });
  });

  it("makes UUIDs", () => {
    expect(newKey()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("passes form keys on the POSTs under a trip", async () => {
    const { api, calls } = client(
      json(201, { id: "i1", trip_version: 4 }),
      json(201, { id: "a1", trip_version: 5 }),
      json(200, { user_id: "u2", trip_version: 6 }),
    );
    await api.addItinerary("t1", { title: "Day" }, { idempotencyKey: "k1" });
    await api.addActivity("t1", "i1", { title: "Tram" }, { idempotencyKey: "k2" });
    await api.share("t1", "b@example.com", "edit", { idempotencyKey: "k3" });
    expect(calls.map((c) => [c.method, c.url, c.headers["Idempotency-Key"]])).toEqual([
      ["POST", "/api/trips/t1/itineraries", "k1"],
      ["POST", "/api/trips/t1/itineraries/i1/activities", "k2"],
      ["POST", "/api/trips/t1/collaborators", "k3"],
    ]);
    expect(JSON.parse(calls[2].body)).toEqual({ email: "b@example.com", permission: "edit" });
    expect(calls.every((c) => c.headers["If-Match"] === undefined)).toBe(true);
    expect(api.etags.get("t1")).toBe('"6"');
  });
});

describe("ETag / If-Match", () => {
  it("sends the trip's newest ETag on PATCH, PUT and DELETE", async () => {
    const { api, calls } = client(
      json(200, trip(), { ETag: '"3-abc"' }),
      json(200, { ...trip(), version: 4 }, { ETag: '"4"' }),
      json(200, { id: "i1", trip_version: 5 }),
      json(200, { id: "a1", trip_version: 6 }),
      json(200, { user_id: "u2", trip_version: 7 }),
      json(200, { user_id: "u2", trip_version: 8 }),
      new Response(null, { status: 204 }),
      new Response(null, { status: 204 }),
      new Response(null, { status: 204 }),
    );
    await api.getTrip("t1");
    await api.updateTrip("t1", { title: "x" });
    await api.updateItinerary("t1", "i1", { position: 1 });
    await api.updateActivity("t1", "i1", "a1", { position: 0 });
    await api.setPermission("t1", "u2", "view");
    await api.removeCollaborator("t1", "u2");
    await api.deleteActivity("t1", "i1", "a1");
    await api.deleteItinerary("t1", "i1");
    await api.deleteTrip("t1");
    expect(calls.map((c) => [c.method, c.headers["If-Match"]])).toEqual([
      ["GET", undefined],
      ["PATCH", '"3-abc"'],
      ["PATCH", '"4"'],
      ["PATCH", '"5"'],
      ["PUT", '"6"'],
      ["DELETE", '"7"'],
      ["DELETE", '"8"'],
      ["DELETE", '"8"'],
      ["DELETE", '"8"'],
    ]);
    expect(calls[4].url).toBe("/api/trips/t1/collaborators/u2");
    expect(api.etags.has("t1")).toBe(false);
  });

  it("never moves back to an older version (a lagging read or a late event)", () => {
    const api = new ApiClient({ token: "t" });
    api.noteEtag("t1", '"5"');
    api.noteEtag("t1", '"4-zz"');
    expect(api.etags.get("t1")).toBe('"5"');
    api.noteTrip({ id: "t1", version: 6 });
    expect(api.etags.get("t1")).toBe('"6"');
    api.noteEtag("t1", null);
    expect(api.etags.get("t1")).toBe('"6"');
    api.noteEtag("t1", '"6-d1"');
    expect(api.etags.get("t1")).toBe('"6-d1"');
  });

  it("sends no If-Match for a trip it has not seen", async () => {
    const { api, calls } = client(json(200, { ...trip(), version: 1 }));
    await api.updateTrip("t9", { title: "x" });
    expect(calls[0].headers["If-Match"]).toBeUndefined();
  });

  it("reads versions out of ETags", () => {
    expect(versionEtag(7)).toBe('"7"');
    expect(etagVersion('"7"')).toBe(7);
    expect(etagVersion('"12-abc"')).toBe(12);
    expect(etagVersion('W/"3"')).toBe(3);
    expect(etagVersion("garbage")).toBe(-1);
    expect(etagVersion(undefined)).toBe(-1);
  });
});

describe("consistency token", () => {
  it("sends the last command's token on the following reads, not on commands", async () => {
    const { api, calls } = client(
      json(200, { items: [], next_cursor: null }),
      json(201, trip(), { ETag: '"1"', "X-Consistency-Token": "c-1" }),
      json(200, { items: [trip()], next_cursor: "n" }),
      json(200, trip(), { ETag: '"3-a"' }),
      json(200, { ...trip(), version: 4 }, { ETag: '"4"', "X-Consistency-Token": "c-2" }),
      json(200, trip(), { ETag: '"4-a"' }),
    );
    await api.listTrips();
    await api.createTrip({ title: "a" });
    await api.listTrips({ status: "booked", q: "lis", role: "owner", cursor: "abc", limit: 50 });
    await api.getTrip("t1");
    await api.updateTrip("t1", { title: "b" });
    await api.getTrip("t1");
    expect(calls.map((c) => c.headers["X-Consistency-Token"])).toEqual([
      undefined,
      undefined,
      "c-1",
      "c-1",
      undefined,
      "c-2",
    ]);
    expect(calls[0].url).toBe("/api/trips?limit=20");
    expect(calls[2].url).toBe("/api/trips?limit=50&status=booked&q=lis&role=owner&cursor=abc");
  });
});

describe("errors", () => {
  it("turns problem+json into an ApiError with its problem and Retry-After", async () => {
    const problem = { title: "Unprocessable Entity", status: 422, detail: "the request is invalid", errors: [] };
    const { api } = client(json(422, problem), json(429, { detail: "slow down" }, { "Retry-After": "7" }));
    const refused = await api.createTrip({}).catch((e) => e);
    expect(refused).toBeInstanceOf(ApiError);
    expect(refused.status).toBe(422);
    expect(refused.problem).toEqual(problem);
    expect(refused.message).toBe("the request is invalid");
    expect(refused.retryAfter).toBeNull();
    const limited = await api.me().catch((e) => e);
    expect(limited.retryAfter).toBe(7);
  });

  it("calls onUnauthorized on a 401", async () => {
    const { api, onUnauthorized } = client(json(401, { title: "Unauthorized" }));
    const error = await api.me().catch((e) => e);
    expect(error.status).toBe(401);
    expect(error.message).toBe("Unauthorized");
    expect(onUnauthorized).toHaveBeenCalledWith(error);
  });

  it("does not sign out when the demo session is refused", async () => {
    const { api, onUnauthorized } = client(json(401, {}));
    await expect(api.demoSession()).rejects.toThrow("HTTP 401");
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it("copes with bodies that are not JSON", async () => {
    const { api } = client(
      new Response("<html>", { status: 502, headers: { "Content-Type": "text/html" } }),
      new Response("{oops", { status: 500, headers: { "Content-Type": "application/json" } }),
      new Response("", { status: 503 }),
    );
    for (let i = 0; i < 3; i += 1) {
      const error = await api.me().catch((e) => e);
      expect(error.problem).toBeNull();
      expect(error.message).toMatch(/^HTTP 50/);
    }
  });

  it("wraps network failures, but lets aborts through", async () => {
    const abort = new DOMException("stop", "AbortError");
    const { api } = client(new TypeError("Failed to fetch"), abort);
    const down = await api.me().catch((e) => e);
    expect(down).toBeInstanceOf(NetworkError);
    expect(down.cause).toBeInstanceOf(TypeError);
    await expect(api.request("GET", "/x", { signal: new AbortController().signal })).rejects.toBe(abort);
  });

  it("treats 304 as success without a body", async () => {
    const { api } = client(new Response(null, { status: 304 }));
    expect(await api.request("GET", "/api/trips/t1")).toMatchObject({ status: 304, data: null });
  });
});

describe("admin", () => {
  it("reads the projection status", async () => {
    const { api, calls } = client(json(200, { projections: [], dead_letters: [] }));
    expect(await api.projections()).toEqual({ projections: [], dead_letters: [] });
    expect(calls[0].url).toBe("/api/admin/projections");
  });
});
