// From problem+json to words a person understands: field errors by field, and one line otherwise.

import { ApiError, NetworkError } from "./api.js";

const FIELD_NAMES = {
  start_date: "the start date",
  end_date: "the end date",
  starts_at: "the start time",
  ends_at: "the end time",
};

function humanizeNames(text) {
  return text.replace(/\b(start_date|end_date|starts_at|ends_at)\b/g, (name) => FIELD_NAMES[name]);
}

function sentence(text) {
  const trimmed = text.trim().replace(/\.$/, "");
  return trimmed ? trimmed[0].toUpperCase() + trimmed.slice(1) : "Invalid";
}

function choices(list) {
  return list
    .split(/, | or /)
    .map((item) => item.replace(/^'|'$/g, ""))
    .join(", ");
}

// Pydantic's messages (and the service's own), most specific first.
const RULES = [
  [/^Field required$/, () => "Required"],
  [/^Value error, must not be null$/, () => "Required"],
  [/^String should have at least 1 character$/, () => "Required"],
  [/^(?:List|Value) should have at least 1 item after validation/, () => "Required"],
  [/^String should have at least (\d+) characters$/, (n) => `At least ${n} characters`],
  [/^String should have at most (\d+) characters?$/, (n) => `At most ${n} characters`],
  [/^(?:List|Value) should have at most (\d+) items? after validation/, (n) => `At most ${n} items`],
  [/^Input should be greater than or equal to (\S+)$/, (n) => `Must be ${n} or more`],
  [/^Input should be less than or equal to (\S+)$/, (n) => `Must be ${n} or less`],
  [/^Input should be greater than (\S+)$/, (n) => `Must be more than ${n}`],
  [/^Input should be a valid datetime/, () => "Enter a date and time"],
  [/^Input should be a valid date/, () => "Enter a date"],
  [/^Input should be a valid integer/, () => "Enter a whole number"],
  [/^(?:Input should be a valid (?:decimal|number)|Decimal input should be)/, () => "Enter a number"],
  [/^Decimal input should have no more than (\d+) decimal places?$/, (n) => `At most ${n} decimal places`],
  [/^Decimal input should have no more than (\d+) digits/, () => "That number is too large"],
  [/^Input should be ('.+')$/, (list) => `Choose one of: ${choices(list)}`],
  [/^must be a decimal string/, () => "Enter an amount like 1250.00 (at most 2 decimals)"],
  [/^Extra inputs are not permitted$/, () => "Cannot be set here"],
  [/^String should match pattern/, () => "Not in the expected format"],
  [/currency code/i, () => "Not a currency code (e.g. EUR, USD)"],
  [/^Value error, (.+)$/, (rest) => sentence(humanizeNames(rest))],
];

/** One validation message, in words a person understands. */
export function humanMessage(msg) {
  const text = String(msg ?? "").trim();
  for (const [pattern, render] of RULES) {
    const match = pattern.exec(text);
    if (match) return render(...match.slice(1));
  }
  return sentence(humanizeNames(text));
}

/** The form field a problem's `loc` points at: `["body", "tags", 3]` → `tags`, `["body", "preferences", "currency"]` → `preferences.currency`. */
export function fieldKey(loc) {
  const parts = [...(loc ?? [])];
  if (["body", "query", "path", "header"].includes(parts[0])) parts.shift();
  return parts.filter((part) => typeof part === "string").join(".");
}

/** Field errors of a problem as `{field: message}` (first message per field); "" is the whole form. */
export function fieldErrors(problem) {
  const found = {};
  for (const error of problem?.errors ?? []) {
    const key = fieldKey(error.loc);
    if (!(key in found)) found[key] = humanMessage(error.msg);
  }
  return found;
}

/** One line about a failed request, for a notice or the top of a form. */
export function describeError(error) {
  if (error instanceof NetworkError) return "Cannot reach the server. Check the connection and try again.";
  if (!(error instanceof ApiError)) return "Something went wrong. Try again.";
  switch (error.status) {
    case 401:
      return "Your session has ended. Sign in again.";
    case 403:
      return "You do not have permission to do that.";
    case 404:
      return "Not found: it was deleted, or it is not shared with you.";
    case 409:
      return "That is already being saved. Try again in a moment.";
    case 412:
      return "Someone changed this trip — reloaded.";
    case 413:
      return "That is too large.";
    case 422:
      return error.problem?.errors?.length
        ? "Please correct the marked fields."
        : sentence(humanizeNames(error.problem?.detail ?? "Invalid"));
    case 429:
      return `Too many requests. Try again in ${error.retryAfter ?? 5} s.`;
    default:
      return "The service is unavailable right now. Try again shortly.";
  }
}
