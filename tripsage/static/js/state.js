// The app's state and the pure rules over it: session, permissions, list merging, ordering, totals.

export const SESSION_KEY = "tripsage.session";

/** The claims of a JWT (not verified: the server does that), or null when it is not one. */
export function decodeClaims(token) {
  const parts = String(token ?? "")
    .trim()
    .split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

function sessionOf(token, now) {
  const claims = decodeClaims(token);
  if (!claims) return null;
  if (typeof claims.exp === "number" && claims.exp * 1000 <= now) return null;
  return { token: token.trim(), claims, admin: claims.role === "service_role", email: claims.email || "" };
}

/** The session kept in `storage` (sessionStorage), or null when absent or expired. */
export function loadSession(storage, now = Date.now()) {
  const token = storage.getItem(SESSION_KEY);
  const session = token ? sessionOf(token, now) : null;
  if (token && !session) storage.removeItem(SESSION_KEY);
  return session;
}

/** Keep a pasted token; throws when it is not an access token or has expired. */
export function saveSession(storage, token, now = Date.now()) {
  const session = sessionOf(token, now);
  if (!session) throw new Error("That is not a valid, unexpired access token.");
  storage.setItem(SESSION_KEY, session.token);
  return session;
}

export function clearSession(storage) {
  storage.removeItem(SESSION_KEY);
}

/** The caller's role on a trip: `owner`, `admin`, `edit`, `view`, or null. */
export function permissionOf(trip, userId) {
  if (!trip || !userId) return null;
  if (trip.owner?.id === userId) return "owner";
  return trip.collaborators?.find((c) => c.user_id === userId)?.permission ?? null;
}

const ALLOWED = {
  edit: ["owner", "admin", "edit"],
  share: ["owner", "admin"],
  delete: ["owner"],
  leave: ["admin", "edit", "view"],
};

/** Whether the caller may `edit` (trip, itineraries, activities), `share`, `delete` or `leave` the trip. */
export function can(trip, userId, action) {
  return (ALLOWED[action] ?? []).includes(permissionOf(trip, userId));
}

function newestFirst(a, b) {
  return a.updated_at === b.updated_at ? (a.id < b.id ? 1 : -1) : a.updated_at < b.updated_at ? 1 : -1;
}

/** The list with `trip` in it (replaced if present), newest `updated_at` first as the server orders it. */
export function upsertTrip(items, trip) {
  return [...items.filter((item) => item.id !== trip.id), trip].sort(newestFirst);
}

export function removeTrip(items, id) {
  return items.filter((item) => item.id !== id);
}

/** Whether a trip belongs in the list under these filters (as `GET /api/trips` filters). */
export function matchesFilters(trip, { status, q, role } = {}, userId = null) {
  if (status && trip.status !== status) return false;
  if (role === "owner" && trip.owner?.id !== userId) return false;
  if (role === "shared" && trip.owner?.id === userId) return false;
  if (q) {
    const needle = q.toLowerCase();
    const haystack = [trip.title, trip.destination, trip.description].filter(Boolean).join("\n").toLowerCase();
    if (!haystack.includes(needle)) return false;
  }
  return true;
}

/**
 * The position changes that move `items[index]` by `delta` places.
 * Items are renumbered 0…n-1 in the new order; only those whose position changes are returned.
 */
export function reorderPlan(items, index, delta) {
  const target = index + delta;
  if (index < 0 || index >= items.length || target < 0 || target >= items.length || delta === 0) return [];
  const order = [...items];
  const [moved] = order.splice(index, 1);
  order.splice(target, 0, moved);
  return order.flatMap((item, position) => (item.position === position ? [] : [{ id: item.id, position }]));
}

/** `{"USD": "1250.00"}` → `["USD 1,250.00"]`, by currency code. */
export function totalsText(totalCost, locale = "en-US") {
  return Object.entries(totalCost ?? {})
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([currency, amount]) => {
      const number = Number(amount);
      const shown = Number.isFinite(number)
        ? number.toLocaleString(locale, { minimumFractionDigits: 2, maximumFractionDigits: 2 })
        : amount;
      return `${currency} ${shown}`;
    });
}

/** Tags typed as "a, b, c" → `["a", "b", "c"]` (blanks dropped). */
export function parseTags(text) {
  return String(text ?? "")
    .split(",")
    .map((tag) => tag.trim())
    .filter(Boolean);
}

/** A tiny observable store: `update` merges a patch (or a function's result) and notifies subscribers. */
export class Store {
  constructor(state = {}) {
    this.state = state;
    this.listeners = new Set();
  }

  update(patch) {
    const change = typeof patch === "function" ? patch(this.state) : patch;
    this.state = { ...this.state, ...change };
    for (const listener of this.listeners) listener(this.state);
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
