// The itineraries of a trip page, each with its activities: add, edit, remove, move up/down.

import { h } from "../dom.js";
import { ACTIVITY_FIELDS, bodyFrom, ITINERARY_FIELDS, label } from "../fields.js";
import { can, reorderPlan } from "../state.js";
import { confirmButton, recordForm } from "./forms.js";

function when(activity) {
  const fmt = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  if (!activity.starts_at) return "";
  return activity.ends_at ? `${fmt(activity.starts_at)} – ${fmt(activity.ends_at)}` : fmt(activity.starts_at);
}

/** Move buttons and edit/remove for one item of an ordered list. */
function itemControls(view, { kind, item, list, index, move, remove }) {
  const name = item.title;
  return h(
    "div",
    { class: "item-actions" },
    h(
      "button",
      {
        type: "button",
        id: `up-${item.id}`,
        "aria-label": `Move ${kind} “${name}” up`,
        disabled: index === 0,
        onclick: () => view.run(() => move(reorderPlan(list, index, -1))),
      },
      "↑",
    ),
    h(
      "button",
      {
        type: "button",
        id: `down-${item.id}`,
        "aria-label": `Move ${kind} “${name}” down`,
        disabled: index === list.length - 1,
        onclick: () => view.run(() => move(reorderPlan(list, index, 1))),
      },
      "↓",
    ),
    h(
      "button",
      { type: "button", id: `edit-${item.id}`, onclick: () => view.toggle(`${kind}:${item.id}`, `edit-${item.id}`) },
      "Edit",
      h("span", { class: "visually-hidden" }, ` ${kind} “${name}”`),
    ),
    confirmButton("Remove", "Really remove?", () => view.run(remove), {
      id: `remove-${item.id}`,
      "aria-label": `Remove ${kind} “${name}”`,
    }),
  );
}

function editForm(view, kind, item, fields, save) {
  const key = `${kind}:${item.id}`;
  return recordForm({
    key,
    label: `Edit ${kind} “${item.title}”`,
    fields,
    record: item,
    submit: "Save",
    handled: (error) => view.handled(error),
    cancel: () => view.toggle(key, `edit-${item.id}`),
    action: async (values) => {
      await save(bodyFrom(fields, values, item));
      view.editing.delete(key);
      await view.reload();
      document.getElementById(`edit-${item.id}`)?.focus();
    },
  });
}

function activityItem(view, itinerary, activity, index, editable) {
  const api = view.app.api;
  const tripId = view.trip.id;
  if (view.editing.has(`activity:${activity.id}`)) {
    return h(
      "li",
      { class: "activity editing" },
      editForm(view, "activity", activity, ACTIVITY_FIELDS, (patch) =>
        api.updateActivity(tripId, itinerary.id, activity.id, patch),
      ),
    );
  }
  const facts = [
    label(activity.item_type),
    when(activity),
    activity.location,
    activity.price ? `${activity.currency} ${activity.price}` : "",
    label(activity.booking_status),
  ].filter(Boolean);
  return h(
    "li",
    { class: "activity", "data-activity-id": activity.id },
    h("div", { class: "item-head" }, h("strong", { class: "activity-title" }, activity.title)),
    h("p", { class: "meta" }, facts.join(" · ")),
    activity.notes && h("p", { class: "notes" }, activity.notes),
    editable &&
      itemControls(view, {
        kind: "activity",
        item: activity,
        list: itinerary.activities,
        index,
        move: async (plan) => {
          for (const step of plan) await api.updateActivity(tripId, itinerary.id, step.id, { position: step.position });
        },
        remove: () => api.deleteActivity(tripId, itinerary.id, activity.id),
      }),
  );
}

function addForm(view, key, summary, fields, add) {
  return h(
    "details",
    { class: "add", "data-key": key },
    h("summary", {}, summary),
    recordForm({
      key,
      label: summary,
      fields,
      submit: summary,
      handled: (error) => view.handled(error),
      action: async (values, idempotencyKey) => {
        await add(bodyFrom(fields, values), idempotencyKey);
        view.main?.querySelector(`details[data-key="${key}"]`)?.removeAttribute("open");
        view.main?.querySelector(`form[data-key="${key}"]`)?.reset();
        await view.reload();
      },
    }),
  );
}

function itineraryItem(view, itinerary, index, editable) {
  const api = view.app.api;
  const trip = view.trip;
  const editing = view.editing.has(`itinerary:${itinerary.id}`);
  const nextPosition = Math.max(-1, ...itinerary.activities.map((a) => a.position)) + 1;
  return h(
    "li",
    { class: "itinerary card", "data-itinerary-id": itinerary.id },
    editing
      ? editForm(view, "itinerary", itinerary, ITINERARY_FIELDS, (patch) =>
          api.updateItinerary(trip.id, itinerary.id, patch),
        )
      : h(
          "div",
          { class: "item-head" },
          h(
            "h3",
            { class: "itinerary-title" },
            itinerary.title,
            itinerary.day ? h("span", { class: "muted" }, ` · ${itinerary.day}`) : "",
          ),
          editable &&
            itemControls(view, {
              kind: "itinerary",
              item: itinerary,
              list: trip.itineraries,
              index,
              move: async (plan) => {
                for (const step of plan) await api.updateItinerary(trip.id, step.id, { position: step.position });
              },
              remove: () => api.deleteItinerary(trip.id, itinerary.id),
            }),
        ),
    itinerary.activities.length
      ? h(
          "ol",
          { class: "activities", "aria-label": `Activities of ${itinerary.title}` },
          itinerary.activities.map((a, i) => activityItem(view, itinerary, a, i, editable)),
        )
      : h("p", { class: "muted" }, "No activities yet."),
    editable &&
      addForm(view, `add-activity:${itinerary.id}`, "Add activity", ACTIVITY_FIELDS, (body, key) =>
        api.addActivity(trip.id, itinerary.id, { ...body, position: nextPosition }, { idempotencyKey: key }),
      ),
  );
}

export function itinerariesSection(view) {
  const trip = view.trip;
  const editable = can(trip, view.app.userId, "edit");
  const nextPosition = Math.max(-1, ...trip.itineraries.map((it) => it.position)) + 1;
  return h(
    "section",
    { "aria-labelledby": "itineraries-title" },
    h("h2", { id: "itineraries-title" }, "Itineraries"),
    trip.itineraries.length
      ? h(
          "ol",
          { class: "itineraries" },
          trip.itineraries.map((it, i) => itineraryItem(view, it, i, editable)),
        )
      : h("p", { class: "muted" }, "No itineraries yet."),
    editable &&
      addForm(view, "add-itinerary", "Add itinerary", ITINERARY_FIELDS, (body, key) =>
        view.app.api.addItinerary(trip.id, { ...body, position: nextPosition }, { idempotencyKey: key }),
      ),
  );
}
