// The API client: every request of the app goes through `ApiClient.request`.
//
// - `Authorization: Bearer <token>` on every call (the demo session call has none).
// - POST carries an `Idempotency-Key`: the caller's (one per form, so a double submit or a retry
//   is the same request) or a fresh one.
// - PATCH, PUT and DELETE carry `If-Match` with the newest ETag known for the trip (from a GET, a
//   command response or a live document); a 412 means someone else changed the trip first.
// - Every command response's `X-Consistency-Token` is sent on the following reads, so a read
//   includes the write that came before it (read your writes).

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status
   * @param {object|null} problem the problem+json body, if any
   * @param {Headers|null} headers the response headers
   */
  constructor(status, problem, headers = null) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem ?? null;
    const retry = headers?.get("Retry-After");
    this.retryAfter = retry ? Number(retry) : null;
  }
}

export class NetworkError extends Error {
  constructor(cause) {
    super("Cannot reach the server");
    this.name = "NetworkError";
    this.cause = cause;
  }
}

/** A fresh idempotency key (one per user action). */
export function newKey() {
  return globalThis.crypto.randomUUID();
}

/** The ETag a command response carries for a trip version (`If-Match` accepts it). */
export function versionEtag(version) {
  return `"${version}"`;
}

/** The trip version an ETag names (`"7"` or `"7-abc"`), or -1. */
export function etagVersion(etag) {
  const match = /^(?:W\/)?"(\d+)(?:-[^"]*)?"$/.exec(etag ?? "");
  return match ? Number(match[1]) : -1;
}

const CONDITIONAL = new Set(["PATCH", "PUT", "DELETE"]);
const trips = (id) => `/api/trips/${encodeURIComponent(id)}`;
const itineraries = (tripId, id) => `${trips(tripId)}/itineraries${id ? `/${encodeURIComponent(id)}` : ""}`;
const activities = (tripId, itineraryId, id) =>
  `${itineraries(tripId, itineraryId)}/activities${id ? `/${encodeURIComponent(id)}` : ""}`;
const collaborators = (tripId, userId) =>
  `${trips(tripId)}/collaborators${userId ? `/${encodeURIComponent(userId)}` : ""}`;

async function readBody(response) {
  if (response.status === 204 || response.status === 304) return null;
  const type = response.headers.get("Content-Type") ?? "";
  if (!type.includes("json")) return null;
  try {
    return await response.json();
  } catch {
    return null;
  }
}

export class ApiClient {
  /**
   * @param {object} options
   * @param {string|null} options.token the bearer token
   * @param {Function} [options.fetchImpl] `fetch` (tests pass a fake)
   * @param {Function} [options.onUnauthorized] called on every 401 (the session has expired)
   */
  constructor({ token = null, fetchImpl = (...args) => globalThis.fetch(...args), onUnauthorized = () => {} } = {}) {
    this.token = token;
    this.fetchImpl = fetchImpl;
    this.onUnauthorized = onUnauthorized;
    this.consistency = null;
    this.etags = new Map();
  }

  /** The request headers for one call (see the module comment). */
  headers(method, { json = false, ifMatch = null, idempotencyKey = null, auth = true } = {}) {
    const headers = { Accept: "application/json" };
    if (auth) headers.Authorization = `Bearer ${this.token}`;
    if (json) headers["Content-Type"] = "application/json";
    if (method === "POST") headers["Idempotency-Key"] = idempotencyKey ?? newKey();
    if (CONDITIONAL.has(method) && ifMatch) headers["If-Match"] = ifMatch;
    if (method === "GET" && this.consistency) headers["X-Consistency-Token"] = this.consistency;
    return headers;
  }

  /**
   * One request. Resolves `{status, data, headers}`; rejects with ApiError (4xx/5xx) or NetworkError.
   */
  async request(method, path, { body, ifMatch, idempotencyKey, auth = true, signal } = {}) {
    const init = { method, headers: this.headers(method, { json: body !== undefined, ifMatch, idempotencyKey, auth }) };
    if (body !== undefined) init.body = JSON.stringify(body);
    if (signal) init.signal = signal;
    let response;
    try {
      response = await this.fetchImpl(path, init);
    } catch (error) {
      if (error?.name === "AbortError") throw error;
      throw new NetworkError(error);
    }
    const token = response.headers.get("X-Consistency-Token");
    if (token) this.consistency = token;
    const data = await readBody(response);
    if (!response.ok && response.status !== 304) {
      const error = new ApiError(response.status, data, response.headers);
      if (response.status === 401 && auth) this.onUnauthorized(error);
      throw error;
    }
    return { status: response.status, data, headers: response.headers };
  }

  /** Remember a trip's ETag unless a newer version is already known (a lagging read must not regress it). */
  noteEtag(tripId, etag) {
    if (!etag) return;
    const known = this.etags.get(tripId);
    if (known === undefined || etagVersion(etag) >= etagVersion(known)) this.etags.set(tripId, etag);
  }

  /** Remember the version of a trip document (a GET or a live event). */
  noteTrip(trip) {
    this.noteEtag(trip.id, versionEtag(trip.version));
  }

  async command(method, tripId, path, { body, idempotencyKey } = {}) {
    const conditional = CONDITIONAL.has(method) ? this.etags.get(tripId) : undefined;
    const result = await this.request(method, path, { body, idempotencyKey, ifMatch: conditional });
    const etag = result.headers.get("ETag");
    if (etag) this.noteEtag(tripId, etag);
    else if (result.data?.trip_version != null) this.noteEtag(tripId, versionEtag(result.data.trip_version));
    return result.data;
  }

  // Reads

  async listTrips({ status, q, role, cursor, limit = 20 } = {}) {
    const params = new URLSearchParams({ limit: String(limit) });
    for (const [name, value] of Object.entries({ status, q, role, cursor })) {
      if (value) params.set(name, value);
    }
    const { data } = await this.request("GET", `/api/trips?${params}`);
    for (const trip of data.items) this.noteTrip(trip);
    return data;
  }

  async getTrip(id) {
    const { data, headers } = await this.request("GET", trips(id));
    this.noteTrip(data);
    this.noteEtag(id, headers.get("ETag"));
    return data;
  }

  async me() {
    return (await this.request("GET", "/api/users/me")).data;
  }

  async projections() {
    return (await this.request("GET", "/api/admin/projections")).data;
  }

  async demoSession() {
    return (await this.request("POST", "/api/demo/session", { auth: false })).data;
  }

  // Commands

  async createTrip(body, { idempotencyKey } = {}) {
    const result = await this.request("POST", "/api/trips", { body, idempotencyKey });
    this.noteEtag(result.data.id, result.headers.get("ETag"));
    return result.data;
  }

  updateTrip(id, patch) {
    return this.command("PATCH", id, trips(id), { body: patch });
  }

  async deleteTrip(id) {
    await this.command("DELETE", id, trips(id));
    this.etags.delete(id);
  }

  addItinerary(tripId, body, options = {}) {
    return this.command("POST", tripId, itineraries(tripId), { body, ...options });
  }

  updateItinerary(tripId, itineraryId, patch) {
    return this.command("PATCH", tripId, itineraries(tripId, itineraryId), { body: patch });
  }

  deleteItinerary(tripId, itineraryId) {
    return this.command("DELETE", tripId, itineraries(tripId, itineraryId));
  }

  addActivity(tripId, itineraryId, body, options = {}) {
    return this.command("POST", tripId, activities(tripId, itineraryId), { body, ...options });
  }

  updateActivity(tripId, itineraryId, activityId, patch) {
    return this.command("PATCH", tripId, activities(tripId, itineraryId, activityId), { body: patch });
  }

  deleteActivity(tripId, itineraryId, activityId) {
    return this.command("DELETE", tripId, activities(tripId, itineraryId, activityId));
  }

  share(tripId, email, permission, options = {}) {
    return this.command("POST", tripId, collaborators(tripId), { body: { email, permission }, ...options });
  }

  setPermission(tripId, userId, permission) {
    return this.command("PUT", tripId, collaborators(tripId, userId), { body: { permission } });
  }

  removeCollaborator(tripId, userId) {
    return this.command("DELETE", tripId, collaborators(tripId, userId));
  }
}
