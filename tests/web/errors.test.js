import { describe, expect, it } from "vitest";
import { ApiError, NetworkError } from "../../tripsage/static/js/api.js";
import { describeError, fieldErrors, fieldKey, humanMessage } from "../../tripsage/static/js/errors.js";

describe("humanMessage", () => {
  it.each([
    ["Field required", "Required"],
    ["Value error, must not be null", "Required"],
    ["String should have at least 1 character", "Required"],
    ["Value should have at least 1 item after validation, not 0", "Required"],
    ["List should have at least 1 item after validation", "Required"],
    ["String should have at least 3 characters", "At least 3 characters"],
    ["String should have at most 200 characters", "At most 200 characters"],
    ["List should have at most 20 items after validation, not 21", "At most 20 items"],
    ["Input should be greater than or equal to 1", "Must be 1 or more"],
    ["Input should be less than or equal to 1000", "Must be 1000 or less"],
    ["Input should be greater than 0", "Must be more than 0"],
    ["Input should be a valid date or datetime, input is too short", "Enter a date"],
    ["Input should be a valid datetime", "Enter a date and time"],
    ["Input should be a valid integer", "Enter a whole number"],
    ["Input should be a valid decimal", "Enter a number"],
    ["Decimal input should be an integer or a decimal", "Enter a number"],
    ["Decimal input should have no more than 2 decimal places", "At most 2 decimal places"],
    ["Decimal input should have no more than 12 digits in total", "That number is too large"],
    ["must be a decimal string like 1250.00 (at most 2 decimals)", "Enter an amount like 1250.00 (at most 2 decimals)"],
    ["Input should be 'view', 'edit' or 'admin'", "Choose one of: view, edit, admin"],
    ["Extra inputs are not permitted", "Cannot be set here"],
    ["String should match pattern '^[^@\\s]+@[^@\\s]+$'", "Not in the expected format"],
    [
      "Invalid ISO 4217 currency code. See https://en.wikipedia.org/wiki/ISO_4217",
      "Not a currency code (e.g. EUR, USD)",
    ],
    ["Value error, must not be before start_date", "Must not be before the start date"],
    ["Value error, must not be before starts_at", "Must not be before the start time"],
    ["itinerary 'Day 9' would lie outside the trip's dates.", "Itinerary 'Day 9' would lie outside the trip's dates"],
    ["", "Invalid"],
    [undefined, "Invalid"],
  ])("%s → %s", (msg, expected) => {
    expect(humanMessage(msg)).toBe(expected);
  });
});

describe("fieldErrors", () => {
  it("keys errors by field, first message wins", () => {
    const problem = {
      errors: [
        { loc: ["body", "title"], msg: "Value should have at least 1 item after validation, not 0" },
        { loc: ["body", "end_date"], msg: "Value error, must not be before start_date" },
        { loc: ["body", "tags", 3], msg: "String should have at most 50 characters" },
        { loc: ["body", "tags", 4], msg: "Field required" },
        { loc: ["body", "preferences", "currency"], msg: "Invalid currency code" },
        { loc: ["query", "limit"], msg: "Input should be less than or equal to 100" },
        { loc: ["body"], msg: "Input should be a valid dictionary" },
      ],
    };
    expect(fieldErrors(problem)).toEqual({
      title: "Required",
      end_date: "Must not be before the start date",
      tags: "At most 50 characters",
      "preferences.currency": "Not a currency code (e.g. EUR, USD)",
      limit: "Must be 100 or less",
      "": "Input should be a valid dictionary",
    });
  });

  it("is empty without errors", () => {
    expect(fieldErrors(null)).toEqual({});
    expect(fieldErrors({ detail: "x" })).toEqual({});
    expect(fieldKey(undefined)).toBe("");
    expect(fieldKey(["path", "trip_id"])).toBe("trip_id");
    expect(fieldKey(["header", "If-Match"])).toBe("If-Match");
  });
});

describe("describeError", () => {
  const err = (status, problem = {}, headers) => new ApiError(status, problem, headers && new Headers(headers));
  it.each([
    [err(401), "Your session has ended. Sign in again."],
    [err(403), "You do not have permission to do that."],
    [err(404), "Not found: it was deleted, or it is not shared with you."],
    [err(409), "That is already being saved. Try again in a moment."],
    [err(412), "Someone changed this trip — reloaded."],
    [err(413), "That is too large."],
    [err(422, { errors: [{ loc: ["body", "title"], msg: "Field required" }] }), "Please correct the marked fields."],
    [err(422, { detail: "a value is out of its allowed range" }), "A value is out of its allowed range"],
    [err(422, null), "Invalid"],
    [err(429, {}, { "Retry-After": "3" }), "Too many requests. Try again in 3 s."],
    [err(429), "Too many requests. Try again in 5 s."],
    [err(503), "The service is unavailable right now. Try again shortly."],
    [new NetworkError(new Error("x")), "Cannot reach the server. Check the connection and try again."],
    [new Error("boom"), "Something went wrong. Try again."],
  ])("%#", (error, expected) => {
    expect(describeError(error)).toBe(expected);
  });
});
