// Sign in: paste a Supabase access token, or (under `tripsage up`, on this machine) continue as the demo user.

import { ApiClient } from "../api.js";
import { h } from "../dom.js";
import { describeError } from "../errors.js";

export function renderSignIn(main, app, { demoOffered }) {
  const error = h("p", { class: "form-error", role: "alert", id: "signin-error", tabindex: "-1" });
  const token = h("textarea", {
    id: "token",
    name: "token",
    rows: 4,
    required: true,
    spellcheck: "false",
    autocomplete: "off",
    "aria-describedby": "token-help signin-error",
  });
  const form = h(
    "form",
    { id: "signin", class: "card narrow", "aria-labelledby": "signin-title" },
    h("label", { for: "token" }, "Access token"),
    h(
      "p",
      { id: "token-help", class: "muted" },
      "A Supabase access token (JWT). Locally: the token ",
      h("code", {}, "tripsage up"),
      " prints, or ",
      h("code", {}, "make token EMAIL=you@example.com"),
      ". It is kept in this tab only and forgotten when you sign out or close the tab.",
    ),
    token,
    error,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Sign in")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      app.signIn(token.value);
    } catch (failure) {
      error.textContent = failure.message;
      token.setAttribute("aria-invalid", "true");
      token.focus();
    }
  });
  const demo = !demoOffered
    ? ""
    : h(
        "section",
        { class: "card narrow", "aria-labelledby": "demo-title" },
        h("h2", { id: "demo-title" }, "Just trying it out?"),
        h("p", { class: "muted" }, "This server runs in quickstart mode: you can use it as its demo user."),
        h(
          "button",
          {
            type: "button",
            id: "demo",
            onclick: async () => {
              try {
                const session = await new ApiClient().demoSession();
                app.signIn(session.access_token);
              } catch (failure) {
                error.textContent = describeError(failure);
              }
            },
          },
          "Continue as demo user",
        ),
      );
  main.replaceChildren(
    h("h1", { id: "signin-title", tabindex: "-1" }, "Sign in to TripSage"),
    h("p", {}, "Plan trips with others: itineraries, activities and costs, updated live for everyone on the trip."),
    form,
    demo,
  );
  token.focus();
}
