// @vitest-environment happy-dom
import { describe, expect, it, vi } from "vitest";
import { ApiError, NetworkError } from "../../tripsage/static/js/api.js";
import {
  clearErrors,
  fieldControl,
  formValues,
  h,
  restore,
  showProblem,
  snapshot,
  svg,
} from "../../tripsage/static/js/dom.js";
import { TRIP_FIELDS } from "../../tripsage/static/js/fields.js";

const field = (name) => TRIP_FIELDS.find((f) => f.name === name);

function tripForm(record) {
  const form = h(
    "form",
    { "data-key": "trip" },
    h("p", { class: "form-error", tabindex: "-1" }),
    ["title", "status", "description", "start_date", "budget", "travelers"].map((n) =>
      fieldControl(field(n), record, "t"),
    ),
  );
  document.body.replaceChildren(form);
  return form;
}

describe("h and svg", () => {
  it("builds elements with attributes, text, listeners and nested children", () => {
    const click = vi.fn();
    const el = h(
      "button",
      { class: "x", id: "b", disabled: true, hidden: false, title: null, "data-n": 3, onclick: click },
      "Go",
      [null, [h("span", { text: "!" })]],
      undefined,
      false,
      0,
    );
    expect(el.outerHTML).toBe('<button class="x" id="b" disabled="" data-n="3">Go<span>!</span>0</button>');
    el.removeAttribute("disabled");
    el.click();
    expect(click).toHaveBeenCalledOnce();
    expect(h("input", { value: "v" }).value).toBe("v");
    expect(h("p").outerHTML).toBe("<p></p>");
    expect(h("p", null).outerHTML).toBe("<p></p>");
  });

  it("builds SVG in the SVG namespace", () => {
    const line = svg("polyline", { points: "0,0 1,1" });
    const root = svg("svg", { viewBox: "0 0 1 1" }, line);
    expect(root.namespaceURI).toBe("http://www.w3.org/2000/svg");
    expect(root.firstChild.getAttribute("points")).toBe("0,0 1,1");
    expect(svg("g").childNodes).toHaveLength(0);
  });
});

describe("fieldControl", () => {
  it("labels every control and points it at its error slot", () => {
    const form = tripForm();
    for (const control of form.querySelectorAll("input, select, textarea")) {
      expect(form.querySelector(`label[for="${control.id}"]`)).not.toBeNull();
      expect(control.getAttribute("aria-describedby")).toBe(`${control.id}-error`);
      expect(form.querySelector(`#${control.id}-error`)).not.toBeNull();
    }
    expect(form.querySelector("#t-title").required).toBe(true);
    expect(form.querySelector("#t-start_date").type).toBe("date");
    expect(form.querySelector("#t-budget").getAttribute("inputmode")).toBe("decimal");
    expect(form.querySelector("#t-travelers").type).toBe("number");
    expect(form.querySelector("#t-status").value).toBe("planning");
  });

  it("fills a record's values", () => {
    const form = tripForm({ title: "Porto", status: "booked", description: "Wine", budget: "9.00", travelers: 2 });
    expect(formValues(form)).toEqual({
      title: "Porto",
      status: "booked",
      description: "Wine",
      start_date: "",
      budget: "9.00",
      travelers: "2",
    });
    expect(form.querySelector("#t-title").required).toBe(false);
  });
});

describe("showProblem", () => {
  const invalid = new ApiError(422, {
    detail: "the request is invalid",
    errors: [
      { loc: ["body", "title"], msg: "Value should have at least 1 item after validation, not 0" },
      { loc: ["body", "budget"], msg: "must be a decimal string like 1250.00 (at most 2 decimals)" },
    ],
  });

  it("puts field errors next to their fields and focuses the first", () => {
    const form = tripForm();
    showProblem(form, invalid);
    expect(form.querySelector("#t-title-error").textContent).toBe("Required");
    expect(form.querySelector("#t-budget-error").textContent).toContain("1250.00");
    expect(form.querySelector("#t-title").getAttribute("aria-invalid")).toBe("true");
    expect(form.querySelector(".form-error").textContent).toBe("");
    expect(document.activeElement?.id).toBe("t-title");
    clearErrors(form);
    expect(form.querySelector("#t-title-error").textContent).toBe("");
    expect(form.querySelector("[aria-invalid]")).toBeNull();
  });

  it("puts errors of fields the form lacks, and other failures, at the top", () => {
    const form = tripForm();
    showProblem(
      form,
      new ApiError(422, {
        errors: [
          { loc: ["body", "trip_type"], msg: "Field required" },
          { loc: ["body"], msg: "x" },
        ],
      }),
    );
    expect(form.querySelector(".form-error").textContent).toBe("Trip type: Required X");
    showProblem(form, new ApiError(403, {}));
    expect(form.querySelector(".form-error").textContent).toBe("You do not have permission to do that.");
    showProblem(form, new NetworkError(new Error("x")));
    expect(form.querySelector(".form-error").textContent).toContain("Cannot reach the server");
  });
});

describe("snapshot and restore", () => {
  it("keeps typed values, open sections and focus across a re-render", () => {
    const draw = () =>
      h(
        "div",
        {},
        h("details", { "data-key": "add" }, h("summary", {}, "Add")),
        h("details", { "data-key": "other" }, h("summary", {}, "Other")),
        tripForm(),
        h("form", { "data-key": "gone" }),
      );
    const root = draw();
    document.body.replaceChildren(root);
    root.querySelector("details[data-key=add]").setAttribute("open", "");
    root.querySelector("#t-title").value = "Half typed";
    root.querySelector("#t-title").focus();
    root.querySelector("#t-status").value = "booked";
    const snap = snapshot(document.body);
    expect(snap.forms).toEqual({ trip: { title: "Half typed", status: "booked" } });
    expect(snap.open).toEqual(["add"]);
    expect(snap.focus).toBe("t-title");

    const again = h("div", {}, h("details", { "data-key": "add" }), h("details", { "data-key": "other" }), tripForm());
    document.body.replaceChildren(again);
    restore(document.body, {
      ...snap,
      forms: { ...snap.forms, missing: { a: "b" }, trip: { ...snap.forms.trip, nope: "x" } },
    });
    expect(document.querySelector("details[data-key=add]").hasAttribute("open")).toBe(true);
    expect(document.querySelector("details[data-key=other]").hasAttribute("open")).toBe(false);
    expect(document.querySelector("#t-title").value).toBe("Half typed");
    expect(document.querySelector("#t-status").value).toBe("booked");
    expect(document.activeElement?.id).toBe("t-title");
    restore(document.body, { forms: {}, open: [], focus: null });
  });
});
