import { describe, expect, it, vi } from "vitest";
import {
  can,
  clearSession,
  decodeClaims,
  loadSession,
  matchesFilters,
  parseTags,
  permissionOf,
  removeTrip,
  reorderPlan,
  SESSION_KEY,
  Store,
  saveSession,
  totalsText,
  upsertTrip,
} from "../../tripsage/static/js/state.js";
import { trip } from "./fake.js";

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
const jwt = (claims) => `${b64({ alg: "HS256" })}.${b64(claims)}.sig`;

class MemoryStorage {
  constructor() {
    this.map = new Map();
  }
  getItem(key) {
    return this.map.has(key) ? this.map.get(key) : null;
  }
  setItem(key, value) {
    this.map.set(key, String(value));
  }
  removeItem(key) {
    this.map.delete(key);
  }
}

describe("session", () => {
  const now = 1_800_000_000_000;
  const user = jwt({ sub: "u1", email: "ada@example.com", role: "authenticated", exp: now / 1000 + 60, name: "Zoë" });

  it("decodes claims (UTF-8, base64url) and refuses what is not a JWT", () => {
    expect(decodeClaims(user).name).toBe("Zoë");
    expect(decodeClaims("abc")).toBeNull();
    expect(decodeClaims(null)).toBeNull();
    expect(decodeClaims("a.!!!.c")).toBeNull();
    expect(decodeClaims(`a.${b64(42)}.c`)).toBeNull();
  });

  it("saves, loads and clears the token in the given storage", () => {
    const storage = new MemoryStorage();
    expect(loadSession(storage, now)).toBeNull();
    const session = saveSession(storage, `  ${user}\n`, now);
    expect(session).toMatchObject({ token: user, admin: false, email: "ada@example.com" });
    expect(storage.getItem(SESSION_KEY)).toBe(user);
    expect(loadSession(storage, now)).toEqual(session);
    clearSession(storage);
    expect(loadSession(storage, now)).toBeNull();
  });

  it("refuses garbage and expired tokens, and forgets an expired one", () => {
    const storage = new MemoryStorage();
    expect(() => saveSession(storage, "not a token", now)).toThrow("not a valid");
    const expired = jwt({ sub: "u1", exp: now / 1000 - 1 });
    expect(() => saveSession(storage, expired, now)).toThrow();
    storage.setItem(SESSION_KEY, expired);
    expect(loadSession(storage, now)).toBeNull();
    expect(storage.getItem(SESSION_KEY)).toBeNull();
  });

  it("knows a service_role token, with or without exp and email", () => {
    const storage = new MemoryStorage();
    const session = saveSession(storage, jwt({ role: "service_role" }), now);
    expect(session).toMatchObject({ admin: true, email: "" });
    expect(loadSession(storage).admin).toBe(true);
  });
});

describe("permissions", () => {
  const shared = trip({
    collaborators: [
      { user_id: "ed", permission: "edit" },
      { user_id: "ad", permission: "admin" },
      { user_id: "vi", permission: "view" },
    ],
  });

  it("finds the caller's role", () => {
    expect(permissionOf(shared, "u1")).toBe("owner");
    expect(permissionOf(shared, "ed")).toBe("edit");
    expect(permissionOf(shared, "nobody")).toBeNull();
    expect(permissionOf(null, "u1")).toBeNull();
    expect(permissionOf(shared, null)).toBeNull();
    expect(permissionOf({ owner: { id: "x" } }, "y")).toBeNull();
  });

  it.each([
    ["u1", { edit: true, share: true, delete: true, leave: false }],
    ["ad", { edit: true, share: true, delete: false, leave: true }],
    ["ed", { edit: true, share: false, delete: false, leave: true }],
    ["vi", { edit: false, share: false, delete: false, leave: true }],
    ["nobody", { edit: false, share: false, delete: false, leave: false }],
  ])("%s may %o", (user, expected) => {
    for (const [action, allowed] of Object.entries(expected)) expect(can(shared, user, action)).toBe(allowed);
    expect(can(shared, user, "fly")).toBe(false);
  });
});

describe("the list", () => {
  const a = trip({ id: "a", updated_at: "2027-01-01T10:00:00Z" });
  const b = trip({ id: "b", updated_at: "2027-01-02T10:00:00Z" });
  const c = trip({ id: "c", updated_at: "2027-01-02T10:00:00Z" });

  it("upserts newest first (ties by id, as the server orders) and removes", () => {
    expect(upsertTrip([a], b).map((t) => t.id)).toEqual(["b", "a"]);
    expect(upsertTrip([b, a], c).map((t) => t.id)).toEqual(["c", "b", "a"]);
    expect(upsertTrip([c, b, a], { ...a, updated_at: "2027-02-01T00:00:00Z" }).map((t) => t.id)).toEqual([
      "a",
      "c",
      "b",
    ]);
    expect(removeTrip([a, b], "a")).toEqual([b]);
  });

  it("filters like the server", () => {
    const mine = trip({ status: "booked", title: "Spring in LISBON", destination: "Portugal", description: "tiles" });
    expect(matchesFilters(mine)).toBe(true);
    expect(matchesFilters(mine, { status: "booked" }, "u1")).toBe(true);
    expect(matchesFilters(mine, { status: "planning" }, "u1")).toBe(false);
    expect(matchesFilters(mine, { role: "owner" }, "u1")).toBe(true);
    expect(matchesFilters(mine, { role: "owner" }, "u2")).toBe(false);
    expect(matchesFilters(mine, { role: "shared" }, "u1")).toBe(false);
    expect(matchesFilters(mine, { role: "shared" }, "u2")).toBe(true);
    expect(matchesFilters(mine, { q: "lisbon" })).toBe(true);
    expect(matchesFilters(mine, { q: "TILES" })).toBe(true);
    expect(matchesFilters(mine, { q: "porto" })).toBe(false);
  });
});

describe("reorderPlan", () => {
  const items = (...positions) => positions.map((position, i) => ({ id: `i${i}`, position }));

  it("swaps neighbours numbered 0…n-1", () => {
    expect(reorderPlan(items(0, 1, 2), 2, -1)).toEqual([
      { id: "i2", position: 1 },
      { id: "i1", position: 2 },
    ]);
    expect(reorderPlan(items(0, 1, 2), 0, 1)).toEqual([
      { id: "i1", position: 0 },
      { id: "i0", position: 1 },
    ]);
  });

  it("renumbers items that share a position", () => {
    expect(reorderPlan(items(0, 0, 0), 2, -1)).toEqual([
      { id: "i2", position: 1 },
      { id: "i1", position: 2 },
    ]);
  });

  it("does nothing past the ends", () => {
    expect(reorderPlan(items(0, 1), 0, -1)).toEqual([]);
    expect(reorderPlan(items(0, 1), 1, 1)).toEqual([]);
    expect(reorderPlan(items(0, 1), 5, -1)).toEqual([]);
    expect(reorderPlan(items(0, 1), 0, 0)).toEqual([]);
  });
});

describe("totals and tags", () => {
  it("formats totals per currency, sorted", () => {
    expect(totalsText({ USD: "1250.00", EUR: "3.5" })).toEqual(["EUR 3.50", "USD 1,250.00"]);
    expect(totalsText({})).toEqual([]);
    expect(totalsText(undefined)).toEqual([]);
    expect(totalsText({ XXX: "n/a" })).toEqual(["XXX n/a"]);
  });

  it("parses tags", () => {
    expect(parseTags(" food, ,wine ,food ")).toEqual(["food", "wine", "food"]);
    expect(parseTags(undefined)).toEqual([]);
  });
});

describe("Store", () => {
  it("merges patches and notifies until unsubscribed", () => {
    const store = new Store({ a: 1 });
    const seen = vi.fn();
    const off = store.subscribe(seen);
    store.update({ b: 2 });
    store.update((s) => ({ a: s.a + 1 }));
    expect(store.state).toEqual({ a: 2, b: 2 });
    expect(seen).toHaveBeenCalledTimes(2);
    off();
    store.update({ c: 3 });
    expect(seen).toHaveBeenCalledTimes(2);
    expect(new Store().state).toEqual({});
  });
});
