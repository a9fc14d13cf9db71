// The app shell: session, navigation (history API), the live stream, and which view is on screen.

import { ApiClient } from "./api.js";
import { h } from "./dom.js";
import { followEvents } from "./live.js";
import { parseRoute } from "./routes.js";
import { clearSession, loadSession, saveSession } from "./state.js";
import { AdminView } from "./views/admin.js";
import { renderSignIn } from "./views/signin.js";
import { NotFoundView, TripView } from "./views/trip.js";
import { TripsView } from "./views/trips.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const notice = document.getElementById("notice");
const demoOffered = document.querySelector('meta[name="tripsage-demo"]')?.content === "on";
let noticeTimer = null;
let first = true;

const app = {
  session: null,
  api: null,
  live: null,
  view: null,
  profile: null,
  verified: false,
  listFilters: { status: "", q: "", role: "" },

  get userId() {
    return this.session?.claims?.sub ?? null;
  },

  notify(text, kind = "info") {
    clearTimeout(noticeTimer);
    notice.textContent = text;
    notice.className = `notice ${kind}`;
    notice.hidden = !text;
    if (text) noticeTimer = setTimeout(() => this.notify(""), 8000);
  },

  navigate(path) {
    if (path !== location.pathname) history.pushState({}, "", path);
    route();
  },

  signIn(token) {
    this.session = saveSession(sessionStorage, token);
    start();
  },

  signOut(message = "") {
    clearSession(sessionStorage);
    this.live?.close();
    this.view?.unmount?.();
    Object.assign(this, { session: null, api: null, live: null, view: null, profile: null, verified: false });
    route();
    if (message) this.notify(message, "error");
  },
};

function renderNav() {
  if (!app.session) {
    nav.replaceChildren();
    return;
  }
  const who = app.profile?.display_name || app.session.email || (app.session.admin ? "service role" : "");
  nav.replaceChildren(
    app.session.admin ? h("a", { href: "/admin" }, "Projections") : h("a", { href: "/" }, "Trips"),
    h("span", { class: "who", id: "who" }, `Signed in as ${who}`),
    h("button", { type: "button", id: "sign-out", onclick: () => app.signOut() }, "Sign out"),
  );
}

async function route() {
  app.view?.unmount?.();
  app.view = null;
  renderNav();
  if (!app.session) {
    document.title = "Sign in — TripSage";
    renderSignIn(main, app, { demoOffered });
    return;
  }
  const where = parseRoute(location.pathname);
  if (app.session.admin && where.name !== "admin") {
    history.replaceState({}, "", "/admin");
    where.name = "admin";
  }
  if (where.name === "list") app.view = new TripsView(app);
  else if (where.name === "trip") app.view = new TripView(app, where.id);
  else if (where.name === "admin") app.view = new AdminView(app);
  else app.view = new NotFoundView(app);
  await app.view.mount(main);
  const heading = main.querySelector("h1")?.textContent;
  document.title = heading ? `${heading} — TripSage` : "TripSage";
  if (!first) main.querySelector("h1")?.focus(); // a new page: screen readers start at its heading
  first = false;
}

function onLive(event, data) {
  app.view?.onLive?.(event, data);
}

async function start() {
  app.api = new ApiClient({
    token: app.session.token,
    onUnauthorized: () =>
      app.signOut(
        app.verified
          ? "Your session has ended. Sign in again."
          : "The server refused this token (expired, or signed with another key).",
      ),
  });
  if (!app.session.admin) {
    app.live = followEvents({
      api: app.api,
      onEvent: onLive,
      onStatus: (status) => document.body.setAttribute("data-live", status),
    });
    app.api
      .me()
      .then((profile) => {
        app.profile = profile;
        app.verified = true;
        renderNav();
      })
      .catch(() => {});
  }
  await route();
}

// Same-origin links move within the app without a page load; the back button works (popstate).
document.addEventListener("click", (event) => {
  const link = event.target.closest?.("a[href^='/']");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  if (link.getAttribute("href").startsWith("/static/") || link.target) return;
  event.preventDefault();
  app.navigate(link.getAttribute("href"));
});
window.addEventListener("popstate", () => route());

app.session = loadSession(sessionStorage);
if (app.session) start();
else route();
