// The people of a trip page: owner, collaborators (change permission, remove), share by email, leave.

import { h } from "../dom.js";
import { describeError } from "../errors.js";
import { label, PERMISSIONS } from "../fields.js";
import { can } from "../state.js";
import { confirmButton, recordForm } from "./forms.js";

const SHARE_FIELDS = [
  { name: "email", label: "Email", kind: "text", required: true, max: 320 },
  { name: "permission", label: "Permission", kind: "select", options: PERMISSIONS },
];

function collaboratorItem(view, collaborator, manage) {
  const api = view.app.api;
  const trip = view.trip;
  const me = view.app.userId;
  const selectId = `perm-${collaborator.user_id}`;
  return h(
    "li",
    { class: "person", "data-user-id": collaborator.user_id },
    h("span", { class: "person-name" }, collaborator.display_name, collaborator.user_id === me ? " (you)" : ""),
    manage
      ? h(
          "span",
          { class: "person-controls" },
          h("label", { for: selectId, class: "visually-hidden" }, `Permission of ${collaborator.display_name}`),
          h(
            "select",
            {
              id: selectId,
              onchange: (event) => view.run(() => api.setPermission(trip.id, collaborator.user_id, event.target.value)),
            },
            PERMISSIONS.map((p) => h("option", { value: p, selected: p === collaborator.permission }, label(p))),
          ),
          confirmButton(
            "Remove",
            "Really remove?",
            () => view.run(() => api.removeCollaborator(trip.id, collaborator.user_id)),
            {
              id: `unshare-${collaborator.user_id}`,
              "aria-label": `Remove ${collaborator.display_name} from this trip`,
            },
          ),
        )
      : h("span", { class: "badge" }, label(collaborator.permission)),
  );
}

export function peopleSection(view) {
  const trip = view.trip;
  const me = view.app.userId;
  const manage = can(trip, me, "share");
  return h(
    "section",
    { class: "card", "aria-labelledby": "people-title" },
    h("h2", { id: "people-title" }, "People"),
    h("p", {}, "Owner: ", h("strong", { id: "owner-name" }, trip.owner.display_name)),
    trip.collaborators.length
      ? h(
          "ul",
          { class: "people", id: "collaborators", "aria-label": "Collaborators" },
          trip.collaborators.map((c) => collaboratorItem(view, c, manage && c.user_id !== me)),
        )
      : h("p", { class: "muted" }, "Not shared with anyone yet."),
    manage &&
      h(
        "div",
        { class: "share" },
        h("h3", {}, "Share this trip"),
        recordForm({
          key: "share",
          label: "Share this trip",
          fields: SHARE_FIELDS,
          submit: "Share",
          handled: (error) => view.handled(error) || shareNotFound(view, error),
          action: async (values, key) => {
            await view.app.api.share(trip.id, values.email.trim(), values.permission, { idempotencyKey: key });
            view.main?.querySelector("form[data-key='share']")?.reset();
            view.app.notify(`Shared with ${values.email.trim()}.`);
            await view.reload();
          },
        }),
      ),
    can(trip, me, "leave") &&
      h(
        "div",
        { class: "actions" },
        confirmButton(
          "Leave trip",
          "Really leave this trip?",
          async () => {
            try {
              await view.app.api.removeCollaborator(trip.id, me);
              view.app.notify(`You left “${trip.title}”.`);
              view.app.navigate("/");
            } catch (error) {
              if (!view.handled(error)) view.app.notify(describeError(error), "error");
            }
          },
          { id: "leave-trip" },
        ),
      ),
  );
}

/** A 404 on share means no one has signed in with that email: say so next to the field. */
function shareNotFound(view, error) {
  if (error?.status !== 404) return false;
  const form = view.main?.querySelector("form[data-key='share']");
  const slot = form?.querySelector("#share-email-error");
  if (!slot) return false;
  slot.textContent = "No one has signed in with this email yet.";
  form.elements.email.setAttribute("aria-invalid", "true");
  form.elements.email.focus();
  return true;
}
