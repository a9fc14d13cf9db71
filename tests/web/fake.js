// A fake `fetch` for the client's unit tests: answers from a queue and records every request.

export function json(status, body, headers = {}) {
  const type = status >= 400 ? "application/problem+json" : "application/json";
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": type, ...headers },
  });
}

export function fakeFetch(...answers) {
  const calls = [];
  const fetchImpl = async (url, init = {}) => {
    calls.push({ url, ...init, headers: { ...(init.headers ?? {}) } });
    const next = answers.shift();
    if (next === undefined) throw new Error(`unexpected request ${init.method} ${url}`);
    if (next instanceof Error) throw next;
    return typeof next === "function" ? next(url, init) : next;
  };
  return { fetchImpl, calls };
}

export const trip = (overrides = {}) => ({
  id: "t1",
  version: 3,
  title: "Lisbon",
  destination: "Lisbon",
  description: null,
  status: "planning",
  updated_at: "2027-01-01T10:00:00Z",
  owner: { id: "u1", display_name: "Ada" },
  collaborators: [],
  itineraries: [],
  stats: { itinerary_count: 0, activity_count: 0, total_cost: {} },
  ...overrides,
});
