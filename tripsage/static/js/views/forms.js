// Forms: a record's fields, a submit button that sends one request per press (an idempotency key
// per form, kept until it succeeds), and the failure shown on the form itself.

import { newKey } from "../api.js";
import { clearErrors, fieldControl, formValues, h, showProblem } from "../dom.js";

const keys = new Map();

/** The idempotency key of a form (by its key), the same until the form's request succeeds. */
export function formKey(key) {
  if (!keys.has(key)) keys.set(key, newKey());
  return keys.get(key);
}

/**
 * A form for some fields of a record.
 * @param {object} options
 * @param {string} options.key a stable key (kept across re-renders: values, focus, idempotency key)
 * @param {object[]} options.fields the fields
 * @param {object} [options.record] the record edited (none: a new one)
 * @param {string} options.submit the submit button's text
 * @param {(values: object, key: string) => Promise<unknown>} options.action sends the request
 * @param {(error: Error) => boolean} [options.handled] true when the caller dealt with an error (412)
 * @param {Function} [options.cancel] shows a Cancel button that calls it
 * @param {string} [options.label] the form's accessible name
 */
export function recordForm({ key, fields, record, submit, action, handled = () => false, cancel, label, extra = [] }) {
  const prefix = key.replace(/[^a-zA-Z0-9_-]/g, "-");
  const button = h("button", { type: "submit", class: "primary" }, submit);
  const form = h(
    "form",
    { "data-key": key, class: "record-form", novalidate: true, "aria-label": label },
    h("p", { class: "form-error", role: "alert", tabindex: "-1" }),
    h(
      "div",
      { class: "grid" },
      fields.map((field) => fieldControl(field, record, prefix)),
    ),
    extra,
    h("div", { class: "actions" }, button, cancel && h("button", { type: "button", onclick: cancel }, "Cancel")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (form.dataset.busy) return;
    form.dataset.busy = "1";
    button.disabled = true;
    clearErrors(form);
    try {
      await action(formValues(form), formKey(key));
      keys.delete(key);
    } catch (error) {
      if (!handled(error)) showProblem(form, error);
    } finally {
      delete form.dataset.busy;
      button.disabled = false;
    }
  });
  return form;
}

/** A button that asks once more before it acts ("Delete trip" → "Really delete this trip?"). */
export function confirmButton(text, confirmText, act, attrs = {}) {
  const button = h("button", { type: "button", class: "danger", ...attrs }, text);
  button.addEventListener("click", async () => {
    if (button.dataset.armed !== "1") {
      button.dataset.armed = "1";
      button.textContent = confirmText;
      return;
    }
    button.disabled = true;
    try {
      await act();
    } finally {
      button.disabled = false;
      button.dataset.armed = "";
      button.textContent = text;
    }
  });
  button.addEventListener("blur", () => {
    button.dataset.armed = "";
    button.textContent = text;
  });
  return button;
}
