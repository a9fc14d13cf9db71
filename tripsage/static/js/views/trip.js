// A trip's page (`/trips/{id}`): details, totals, itineraries and activities, people; live.

import { ApiError } from "../api.js";
import { h, restore, snapshot } from "../dom.js";
import { describeError } from "../errors.js";
import { bodyFrom, count, label, roleLabel, TRIP_FIELDS } from "../fields.js";
import { can, permissionOf, totalsText } from "../state.js";
import { confirmButton, recordForm } from "./forms.js";
import { itinerariesSection } from "./itineraries.js";
import { peopleSection } from "./people.js";

export class NotFoundView {
  constructor(app, text = "It does not exist, was deleted, or is not shared with you.") {
    this.app = app;
    this.text = text;
  }

  mount(main) {
    main.replaceChildren(
      h("h1", { tabindex: "-1", id: "not-found" }, "Trip not found"),
      h("p", {}, this.text),
      h("p", {}, h("a", { href: "/" }, "Back to your trips")),
    );
    main.querySelector("h1").focus();
  }
}

export class TripView {
  constructor(app, id) {
    this.app = app;
    this.id = id;
    this.trip = null;
    this.editing = new Set();
    this.main = null;
  }

  async mount(main) {
    this.main = main;
    main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    if (await this.reload()) this.main.querySelector("h1")?.focus();
  }

  unmount() {
    this.main = null;
  }

  /** Read the trip again (with the consistency token of the last command) and draw it. */
  async reload() {
    try {
      this.show(await this.app.api.getTrip(this.id));
      return true;
    } catch (error) {
      if (this.main && error instanceof ApiError && (error.status === 404 || error.status === 422)) {
        new NotFoundView(this.app).mount(this.main);
      } else if (this.main) this.app.notify(describeError(error), "error");
      return false;
    }
  }

  show(trip) {
    if (this.trip && trip.version < this.trip.version) return; // a lagging read: keep the newer one
    this.trip = trip;
    this.render();
  }

  /** Run a command, then show its result; a 412 reloads and says so. True when done. */
  async run(command) {
    try {
      await command();
      await this.reload();
      return true;
    } catch (error) {
      if (!this.handled(error)) this.app.notify(describeError(error), "error");
      return false;
    }
  }

  /** Errors every form of this page handles the same way: 412 (reload and say so), 404 (gone). */
  handled(error) {
    if (!(error instanceof ApiError)) return false;
    if (error.status === 412) {
      this.reload().then(() => this.app.notify("Someone changed this trip — reloaded.", "warning"));
      return true;
    }
    if (error.status === 404 && error.problem?.detail?.startsWith("trip")) {
      this.reload();
      return true;
    }
    return false;
  }

  onLive(event, data) {
    if (!this.main || data?.id !== this.id) {
      if (event === "reset") this.reload();
      return;
    }
    if (event === "trip") {
      this.app.api.noteTrip(data);
      this.show(data);
    } else if (event === "trip_removed") {
      this.trip = null;
      new NotFoundView(this.app, "This trip was deleted, or it is no longer shared with you.").mount(this.main);
    }
  }

  /** Open or close an editor; focus its first field, or (closing) the button that opened it. */
  toggle(key, opener) {
    const opening = !this.editing.has(key);
    if (opening) this.editing.add(key);
    else this.editing.delete(key);
    this.render();
    const target = opening ? `${key.replace(/[^a-zA-Z0-9_-]/g, "-")}-title` : opener;
    document.getElementById(target)?.focus();
  }

  render() {
    if (!this.main || !this.trip) return;
    const snap = snapshot(this.main);
    const trip = this.trip;
    const me = this.app.userId;
    this.main.replaceChildren(
      h("p", {}, h("a", { href: "/", class: "back" }, "← All trips")),
      h("h1", { tabindex: "-1", id: "page-title" }, trip.title),
      h(
        "p",
        { class: "meta" },
        `${trip.destination} · ${trip.start_date} → ${trip.end_date} · `,
        h("span", { class: `badge status-${trip.status}` }, label(trip.status)),
        ` · You: ${roleLabel(permissionOf(trip, me))}`,
      ),
      this.details(),
      this.totals(),
      itinerariesSection(this),
      peopleSection(this),
    );
    restore(this.main, snap);
  }

  details() {
    const trip = this.trip;
    const me = this.app.userId;
    const rows = [
      ["Owner", trip.owner.display_name],
      ["Type", label(trip.trip_type)],
      ["Travelers", trip.travelers],
      ["Budget", trip.budget ? `${trip.currency} ${trip.budget}` : `— (${trip.currency})`],
      ["Tags", trip.tags.length ? trip.tags.join(", ") : "—"],
      ["Description", trip.description || "—"],
    ];
    const editing = this.editing.has("trip");
    return h(
      "section",
      { class: "card", "aria-labelledby": "details-title" },
      h("h2", { id: "details-title" }, "Details"),
      editing
        ? recordForm({
            key: "trip",
            label: "Edit trip",
            fields: TRIP_FIELDS,
            record: trip,
            submit: "Save trip",
            handled: (error) => this.handled(error),
            cancel: () => this.toggle("trip", "edit-trip"),
            action: async (values) => {
              await this.app.api.updateTrip(trip.id, bodyFrom(TRIP_FIELDS, values, trip));
              this.editing.delete("trip");
              await this.reload();
              document.getElementById("edit-trip")?.focus();
            },
          })
        : h(
            "dl",
            { class: "details" },
            rows.map(([name, value]) => [h("dt", {}, name), h("dd", {}, String(value))]),
          ),
      h(
        "div",
        { class: "actions" },
        !editing &&
          can(trip, me, "edit") &&
          h("button", { type: "button", id: "edit-trip", onclick: () => this.toggle("trip") }, "Edit trip"),
        can(trip, me, "delete") &&
          confirmButton(
            "Delete trip",
            "Really delete this trip?",
            async () => {
              try {
                await this.app.api.deleteTrip(trip.id);
                this.app.notify(`Deleted “${trip.title}”.`);
                this.app.navigate("/");
              } catch (error) {
                if (!this.handled(error)) this.app.notify(describeError(error), "error");
              }
            },
            { id: "delete-trip" },
          ),
      ),
    );
  }

  totals() {
    const { stats } = this.trip;
    const lines = totalsText(stats.total_cost);
    return h(
      "section",
      { class: "card", "aria-labelledby": "totals-title" },
      h("h2", { id: "totals-title" }, "Totals"),
      h(
        "p",
        { id: "totals" },
        `${count(stats.itinerary_count, "itinerary", "itineraries")}, ${count(stats.activity_count, "activity", "activities")}. `,
        lines.length ? `Cost (not cancelled): ${lines.join(" · ")}` : "No priced activities yet.",
      ),
    );
  }
}
