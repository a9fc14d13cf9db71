// The trips page (`/`): filters, a new-trip form, the list (live), "Load more" over the cursor.

import { h } from "../dom.js";
import { describeError } from "../errors.js";
import { bodyFrom, count, label, roleLabel, STATUSES, TRIP_FIELDS } from "../fields.js";
import { tripPath } from "../routes.js";
import { matchesFilters, permissionOf, removeTrip, totalsText, upsertTrip } from "../state.js";
import { recordForm } from "./forms.js";

export class TripsView {
  constructor(app) {
    this.app = app;
    this.items = [];
    this.next = null;
    this.list = h("div", { id: "trip-list", "aria-live": "polite", "aria-busy": "true" });
    this.more = h("div", { class: "actions" });
    this.searchTimer = null;
  }

  async mount(main) {
    main.replaceChildren(
      h("h1", { tabindex: "-1" }, "Your trips"),
      this.filtersForm(),
      h(
        "details",
        { class: "card", id: "new-trip", "data-key": "new-trip" },
        h("summary", {}, "New trip"),
        recordForm({
          key: "new-trip",
          label: "New trip",
          fields: TRIP_FIELDS,
          submit: "Create trip",
          action: (values, key) => this.create(values, key),
        }),
      ),
      h("h2", { class: "visually-hidden" }, "Trips"),
      this.list,
      this.more,
    );
    await this.load();
  }

  filtersForm() {
    const filters = this.app.listFilters;
    const select = (id, text, options, value) =>
      h(
        "div",
        { class: "field" },
        h("label", { for: id }, text),
        h(
          "select",
          { id, name: id.replace("filter-", ""), onchange: () => this.changed() },
          options.map(([v, t]) => h("option", { value: v, selected: v === value }, t)),
        ),
      );
    return h(
      "form",
      { id: "filters", class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
      h(
        "div",
        { class: "field" },
        h("label", { for: "filter-q" }, "Search"),
        h("input", {
          id: "filter-q",
          name: "q",
          type: "search",
          value: filters.q,
          placeholder: "Title, destination…",
          oninput: () => {
            clearTimeout(this.searchTimer);
            this.searchTimer = setTimeout(() => this.changed(), 300);
          },
        }),
      ),
      select("filter-status", "Status", [["", "Any"], ...STATUSES.map((s) => [s, label(s)])], filters.status),
      select(
        "filter-role",
        "Whose",
        [
          ["", "All trips"],
          ["owner", "Mine"],
          ["shared", "Shared with me"],
        ],
        filters.role,
      ),
    );
  }

  changed() {
    const form = document.getElementById("filters");
    this.app.listFilters = {
      q: form.elements.q.value.trim(),
      status: form.elements.status.value,
      role: form.elements.role.value,
    };
    this.load();
  }

  async load({ more = false } = {}) {
    this.list.setAttribute("aria-busy", "true");
    this.request = (this.request ?? 0) + 1;
    const request = this.request;
    try {
      const page = await this.app.api.listTrips({ ...this.app.listFilters, cursor: more ? this.next : null });
      if (request !== this.request) return; // a newer search or filter has been sent since
      this.items = more
        ? [...this.items, ...page.items.filter((t) => !this.items.some((i) => i.id === t.id))]
        : page.items;
      this.next = page.next_cursor;
      this.render();
    } catch (error) {
      if (request === this.request) this.list.replaceChildren(h("p", { class: "form-error" }, describeError(error)));
    } finally {
      if (request === this.request) this.list.setAttribute("aria-busy", "false");
    }
  }

  async create(values, key) {
    const trip = await this.app.api.createTrip(bodyFrom(TRIP_FIELDS, values), { idempotencyKey: key });
    document.getElementById("new-trip").removeAttribute("open");
    document.querySelector("form[data-key='new-trip']").reset();
    this.app.notify(`Created “${trip.title}”.`);
    await this.load();
  }

  card(trip) {
    const role = permissionOf(trip, this.app.userId);
    const totals = totalsText(trip.stats?.total_cost);
    const names = trip.itineraries.map((it) => it.title);
    return h(
      "li",
      { class: "card trip-card", "data-trip-id": trip.id },
      h("h3", {}, h("a", { href: tripPath(trip.id) }, trip.title)),
      h(
        "p",
        { class: "meta" },
        `${trip.destination} · ${trip.start_date} → ${trip.end_date} · `,
        h("span", { class: `badge status-${trip.status}` }, label(trip.status)),
      ),
      h(
        "p",
        { class: "meta" },
        `Owner: ${trip.owner.display_name}`,
        role !== "owner" ? ` · You: ${roleLabel(role)}` : "",
        trip.collaborators.length ? ` · Shared with ${trip.collaborators.length}` : "",
      ),
      h(
        "p",
        { class: "meta itineraries" },
        names.length ? `Itineraries: ${names.join(", ")}` : "No itineraries yet",
        ` · ${count(trip.stats.activity_count, "activity", "activities")}`,
        totals.length ? ` · ${totals.join(", ")}` : "",
      ),
    );
  }

  render() {
    const filtered = Object.values(this.app.listFilters).some(Boolean);
    this.list.replaceChildren(
      this.items.length
        ? h(
            "ul",
            { class: "cards" },
            this.items.map((trip) => this.card(trip)),
          )
        : h("p", { class: "muted" }, filtered ? "No trips match these filters." : "No trips yet. Create one above."),
    );
    this.more.replaceChildren(
      this.next
        ? h("button", { type: "button", id: "load-more", onclick: () => this.load({ more: true }) }, "Load more")
        : "",
    );
  }

  onLive(event, data) {
    if (event === "reset") {
      this.load();
      return;
    }
    if (event === "trip_removed") this.items = removeTrip(this.items, data.id);
    else if (event === "trip") {
      this.app.api.noteTrip(data);
      const shown = this.items.some((t) => t.id === data.id);
      if (matchesFilters(data, this.app.listFilters, this.app.userId)) this.items = upsertTrip(this.items, data);
      else if (shown) this.items = removeTrip(this.items, data.id);
    }
    this.render();
  }
}
