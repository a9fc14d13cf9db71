// The forms' fields (trip, itinerary, activity) and the conversions between form values and API bodies.

import { parseTags } from "./state.js";

export const STATUSES = ["planning", "booked", "in_progress", "completed", "cancelled"];
export const TRIP_TYPES = ["leisure", "business", "family", "solo", "other"];
export const ITEM_TYPES = ["activity", "meal", "transport", "accommodation", "event", "other"];
export const BOOKING = ["planned", "reserved", "booked", "completed", "cancelled"];
export const PERMISSIONS = ["view", "edit", "admin"];

/** A label for an enum value: `in_progress` → `In progress`. */
export function label(value) {
  const text = String(value ?? "").replace(/_/g, " ");
  return text ? text[0].toUpperCase() + text.slice(1) : "";
}

const ROLE_LABELS = { owner: "Owner", admin: "Admin", edit: "Can edit", view: "Can view" };

/** The caller's role on a trip, in words. */
export function roleLabel(role) {
  return ROLE_LABELS[role] ?? "";
}

/** "1 activity", "2 activities". */
export function count(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

// kind: how a value is read and sent. `required`: sent even when empty on create (the server says
// "Required"); `keep`: cannot be cleared by a PATCH (an emptied field is sent, and refused, as such).
export const TRIP_FIELDS = [
  { name: "title", label: "Title", kind: "text", required: true, max: 200 },
  { name: "destination", label: "Destination", kind: "text", required: true, max: 200 },
  { name: "start_date", label: "Start date", kind: "date", required: true },
  { name: "end_date", label: "End date", kind: "date", required: true },
  { name: "status", label: "Status", kind: "select", options: STATUSES, keep: true },
  { name: "trip_type", label: "Type", kind: "select", options: TRIP_TYPES, keep: true },
  { name: "budget", label: "Budget", kind: "money" },
  { name: "currency", label: "Currency", kind: "code", keep: true, placeholder: "USD", max: 3 },
  { name: "travelers", label: "Travelers", kind: "int", keep: true, min: 1 },
  { name: "tags", label: "Tags (comma-separated)", kind: "tags", keep: true },
  { name: "description", label: "Description", kind: "textarea", max: 2000 },
];

export const ITINERARY_FIELDS = [
  { name: "title", label: "Title", kind: "text", required: true, max: 200 },
  { name: "day", label: "Day", kind: "date" },
];

export const ACTIVITY_FIELDS = [
  { name: "title", label: "Title", kind: "text", required: true, max: 200 },
  { name: "item_type", label: "Kind", kind: "select", options: ITEM_TYPES, keep: true },
  { name: "starts_at", label: "Starts", kind: "datetime" },
  { name: "ends_at", label: "Ends", kind: "datetime" },
  { name: "location", label: "Location", kind: "text", max: 500 },
  { name: "price", label: "Price", kind: "money" },
  { name: "currency", label: "Currency", kind: "code", keep: true, max: 3 },
  { name: "booking_status", label: "Booking", kind: "select", options: BOOKING, keep: true },
  { name: "notes", label: "Notes", kind: "textarea", max: 5000 },
];

const pad = (n) => String(n).padStart(2, "0");

/** An RFC 3339 timestamp → the value of a `datetime-local` input (local time, minutes). */
export function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A `datetime-local` value → RFC 3339 in UTC (what the API expects), or the text as typed if unreadable. */
export function fromLocalInput(value) {
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString();
}

/** A record's value as a form shows it. */
export function formValue(field, record) {
  const value = record?.[field.name];
  if (value === null || value === undefined) return "";
  if (field.kind === "tags") return value.join(", ");
  if (field.kind === "datetime") return toLocalInput(value);
  return String(value);
}

/** A form's text → the JSON value the API takes (null when empty). */
export function apiValue(field, text) {
  const value = String(text ?? "").trim();
  if (field.kind === "tags") return parseTags(value);
  if (value === "") return null;
  if (field.kind === "int") return /^\d+$/.test(value) ? Number(value) : value;
  if (field.kind === "datetime") return fromLocalInput(value);
  if (field.kind === "code") return value.toUpperCase();
  return value;
}

function same(field, value, before) {
  if (field.kind === "money" && value !== null && before != null) return Number(value) === Number(before);
  return JSON.stringify(value ?? null) === JSON.stringify(before ?? null);
}

/**
 * The body of a create (no `original`) or of a PATCH (only the fields that differ from `original`).
 * An emptied required text is sent as "" and an emptied optional field as null: the server answers
 * "Required" for the first and clears the second.
 * @param {object[]} fields the form's fields
 * @param {Record<string,string>} values the form's values by field name
 * @param {object} [original] the record being edited
 */
export function bodyFrom(fields, values, original) {
  const body = {};
  for (const field of fields) {
    if (!(field.name in values)) continue;
    const value = apiValue(field, values[field.name]);
    const blankText = value === null && field.required && field.kind === "text";
    if (original) {
      const before = field.kind === "datetime" ? apiValue(field, formValue(field, original)) : original[field.name];
      if (!same(field, value, before)) body[field.name] = blankText ? "" : value;
    } else if (blankText) {
      body[field.name] = "";
    } else if (value !== null && !(field.kind === "tags" && value.length === 0)) {
      body[field.name] = value;
    }
  }
  return body;
}
