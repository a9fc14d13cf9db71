// DOM helpers: element building, form fields with their error slots, and keeping what a person is
// typing (and where the focus is) across a re-render caused by a live update.

import { ApiError } from "./api.js";
import { describeError, fieldErrors } from "./errors.js";
import { formValue, label } from "./fields.js";

/** `h("a", {href: "/", class: "x", onclick: fn}, "text", child)`; null, false and undefined children are skipped. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "value") {
      el.setAttribute("value", value); // the default value too: `snapshot` tells typed values from it
      el.value = value;
    } else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element with attributes. */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  el.append(...children);
  return el;
}

/** A labelled control for one field, with an error slot it is described by. */
export function fieldControl(field, record, prefix) {
  const id = `${prefix}-${field.name}`;
  const errorId = `${id}-error`;
  const common = { id, name: field.name, "aria-describedby": errorId, required: field.required && !record };
  let control;
  if (field.kind === "select") {
    const current = formValue(field, record) || field.options[0];
    control = h(
      "select",
      common,
      field.options.map((option) => h("option", { value: option, selected: option === current }, label(option))),
    );
  } else if (field.kind === "textarea") {
    control = h("textarea", { ...common, maxlength: field.max, rows: 3 });
    control.defaultValue = formValue(field, record);
  } else {
    const types = { date: "date", datetime: "datetime-local", int: "number", money: "text" };
    control = h("input", {
      ...common,
      type: types[field.kind] ?? "text",
      maxlength: field.max,
      min: field.min,
      inputmode: field.kind === "money" ? "decimal" : null,
      placeholder: field.placeholder,
      autocomplete: "off",
      value: formValue(field, record),
    });
  }
  return h(
    "div",
    { class: `field field-${field.kind}` },
    h("label", { for: id }, field.label),
    control,
    h("p", { class: "field-error", id: errorId }),
  );
}

/** A form's values by field name. */
export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

export function clearErrors(form) {
  for (const slot of form.querySelectorAll(".field-error, .form-error")) slot.textContent = "";
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

/** Show a failed request on a form: field errors next to their fields, the rest at the top; focus the first. */
export function showProblem(form, error) {
  clearErrors(form);
  const general = [];
  let first = null;
  const errors = error instanceof ApiError && error.status === 422 ? fieldErrors(error.problem) : {};
  for (const [key, message] of Object.entries(errors)) {
    const control = form.elements.namedItem(key.split(".")[0]);
    const slot = control && form.querySelector(`#${CSS.escape(control.id)}-error`);
    if (slot) {
      slot.textContent = message;
      control.setAttribute("aria-invalid", "true");
      first ??= control;
    } else {
      general.push(key ? `${label(key)}: ${message}` : message);
    }
  }
  const summary = form.querySelector(".form-error");
  if (!Object.keys(errors).length || general.length) {
    summary.textContent = general.length ? general.join(" ") : describeError(error);
  }
  (first ?? summary).focus?.();
}

function edited(control) {
  if (control.tagName === "SELECT") return [...control.options].some((o) => o.selected !== o.defaultSelected);
  return "defaultValue" in control && control.value !== control.defaultValue;
}

/**
 * What a person has typed and opened, to put back after a re-render. Only the fields they changed:
 * the others show the new record (someone else's change is not undone by saving the form).
 */
export function snapshot(root) {
  const forms = {};
  for (const form of root.querySelectorAll("form[data-key]")) {
    const changed = [...form.elements].filter((c) => c.name && edited(c)).map((c) => [c.name, c.value]);
    if (changed.length) forms[form.dataset.key] = Object.fromEntries(changed);
  }
  const open = [...root.querySelectorAll("details[data-key][open]")].map((el) => el.dataset.key);
  return { forms, open, focus: document.activeElement?.id || null };
}

export function restore(root, snap) {
  for (const key of snap.open) root.querySelector(`details[data-key="${CSS.escape(key)}"]`)?.setAttribute("open", "");
  for (const [key, values] of Object.entries(snap.forms)) {
    const form = root.querySelector(`form[data-key="${CSS.escape(key)}"]`);
    if (!form) continue;
    for (const [name, value] of Object.entries(values)) {
      const control = form.elements.namedItem(name);
      if (control && "value" in control) control.value = value;
    }
  }
  if (snap.focus) document.getElementById(snap.focus)?.focus();
}
