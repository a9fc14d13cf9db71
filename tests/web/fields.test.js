import { describe, expect, it } from "vitest";
import {
  ACTIVITY_FIELDS,
  apiValue,
  bodyFrom,
  count,
  formValue,
  fromLocalInput,
  label,
  roleLabel,
  TRIP_FIELDS,
  toLocalInput,
} from "../../tripsage/static/js/fields.js";

const field = (name) => [...TRIP_FIELDS, ...ACTIVITY_FIELDS].find((f) => f.name === name);

describe("labels and values", () => {
  it("counts and names roles", () => {
    expect(count(1, "activity", "activities")).toBe("1 activity");
    expect(count(0, "activity", "activities")).toBe("0 activities");
    expect(roleLabel("edit")).toBe("Can edit");
    expect(roleLabel(null)).toBe("");
  });

  it("labels enum values", () => {
    expect(label("in_progress")).toBe("In progress");
    expect(label("")).toBe("");
    expect(label(null)).toBe("");
  });

  it("shows a record's values in a form", () => {
    expect(formValue(field("tags"), { tags: ["a", "b"] })).toBe("a, b");
    expect(formValue(field("travelers"), { travelers: 2 })).toBe("2");
    expect(formValue(field("budget"), { budget: null })).toBe("");
    expect(formValue(field("title"), undefined)).toBe("");
    const at = formValue(field("starts_at"), { starts_at: "2027-04-02T08:30:00Z" });
    expect(new Date(at).toISOString()).toBe("2027-04-02T08:30:00.000Z");
  });

  it("converts local date-times both ways", () => {
    expect(toLocalInput("")).toBe("");
    expect(toLocalInput("nonsense")).toBe("");
    expect(fromLocalInput(toLocalInput("2027-04-02T08:30:00Z"))).toBe("2027-04-02T08:30:00.000Z");
    expect(fromLocalInput("not a date")).toBe("not a date");
  });

  it("reads what the API takes", () => {
    expect(apiValue(field("tags"), " a, b ,")).toEqual(["a", "b"]);
    expect(apiValue(field("title"), "  ")).toBeNull();
    expect(apiValue(field("travelers"), "3")).toBe(3);
    expect(apiValue(field("travelers"), "-1")).toBe("-1");
    expect(apiValue(field("currency"), "eur")).toBe("EUR");
    expect(apiValue(field("budget"), "12.50")).toBe("12.50");
    expect(apiValue(field("starts_at"), "2027-04-02T10:00")).toMatch(/^2027-04-02T\d\d:00:00.000Z$/);
    expect(apiValue(field("title"), undefined)).toBeNull();
  });
});

describe("bodyFrom", () => {
  const form = {
    title: "",
    destination: "Porto",
    start_date: "2027-05-01",
    end_date: "",
    status: "planning",
    trip_type: "leisure",
    budget: "",
    currency: "eur",
    travelers: "2",
    tags: "",
    description: "",
  };

  it("builds a create body: empty required text sent as '' (the server says Required), empty optionals left out", () => {
    expect(bodyFrom(TRIP_FIELDS, form)).toEqual({
      title: "",
      destination: "Porto",
      start_date: "2027-05-01",
      status: "planning",
      trip_type: "leisure",
      currency: "EUR",
      travelers: 2,
    });
    expect(bodyFrom(TRIP_FIELDS, { ...form, tags: "a, b", budget: "10" })).toMatchObject({
      tags: ["a", "b"],
      budget: "10",
    });
  });

  it("builds a PATCH body of the changed fields only", () => {
    const trip = {
      title: "Porto",
      destination: "Porto",
      start_date: "2027-05-01",
      end_date: "2027-05-03",
      status: "planning",
      trip_type: "leisure",
      budget: "100.00",
      currency: "EUR",
      travelers: 2,
      tags: ["wine"],
      description: "old",
    };
    const same = { ...form, title: "Porto", end_date: "2027-05-03", budget: "100", tags: "wine", description: "old" };
    expect(bodyFrom(TRIP_FIELDS, same, trip)).toEqual({});
    expect(
      bodyFrom(TRIP_FIELDS, { ...same, title: "", budget: "", description: "", tags: "", status: "booked" }, trip),
    ).toEqual({ title: "", budget: null, description: null, tags: [], status: "booked" });
    expect(bodyFrom(TRIP_FIELDS, { ...same, budget: "120" }, trip)).toEqual({ budget: "120" });
    expect(bodyFrom(TRIP_FIELDS, { title: "New" }, trip)).toEqual({ title: "New" });
  });

  it("compares date-times as instants", () => {
    const activity = { title: "Tram", starts_at: "2027-04-02T08:30:00Z", ends_at: null };
    const values = { title: "Tram", starts_at: toLocalInput(activity.starts_at), ends_at: "" };
    expect(bodyFrom(ACTIVITY_FIELDS, values, activity)).toEqual({});
    expect(bodyFrom(ACTIVITY_FIELDS, { ...values, starts_at: "" }, activity)).toEqual({ starts_at: null });
  });
});
