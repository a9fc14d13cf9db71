// Client-side routes (the server serves the page at each: `tripsage/web.py` APP_ROUTES).

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `/` → list, `/trips/<uuid>` → trip, `/admin` → admin; anything else → notfound. */
export function parseRoute(pathname) {
  const path = pathname.replace(/\/+$/, "") || "/";
  if (path === "/") return { name: "list" };
  if (path === "/admin") return { name: "admin" };
  const trip = /^\/trips\/([^/]+)$/.exec(path);
  if (trip) return UUID.test(trip[1]) ? { name: "trip", id: trip[1].toLowerCase() } : { name: "notfound" };
  return { name: "notfound" };
}

export function tripPath(id) {
  return `/trips/${encodeURIComponent(id)}`;
}
