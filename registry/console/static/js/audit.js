// Page: the audit log, filtered by repository, actor, action and time.
import * as api from "./api.js";
import { add, emptyNote, errorBox, field, h, select, table } from "./dom.js";
import { isoFromLocalInput, links, localInputValue, parseTime, timeElement, utcOffset } from "./format.js";

const PAGE_SIZE = 100;
const FILTERS = ["repository", "actor", "action", "since", "until"];

function datalist(id, values) {
  return h(
    "datalist",
    { id },
    values.map((value) => h("option", { value })),
  );
}

function timeInput(id, name, iso) {
  const date = parseTime(iso);
  return h("input", { id, name, type: "datetime-local", step: "1", value: date ? localInputValue(date).slice(0, 19) : "" });
}

function filterForm(ctx, values, facets, repositories) {
  const actions = [...new Set([...facets.actions, values.action].filter(Boolean))].sort();
  const controls = {
    repository: h("input", { id: "audit-repository", name: "repository", type: "text", list: "audit-repositories", value: values.repository, placeholder: "acme/sql-gen" }),
    actor: h("input", { id: "audit-actor", name: "actor", type: "text", list: "audit-actors", value: values.actor }),
    action: select({ id: "audit-action", name: "action" }, [["", "any"], ...actions.map((action) => [action, action])], values.action),
    since: timeInput("audit-since", "since", values.since),
    until: timeInput("audit-until", "until", values.until),
  };
  const submit = (event) => {
    event.preventDefault();
    ctx.navigate("/audit", {
      repository: controls.repository.value.trim(),
      actor: controls.actor.value.trim(),
      action: controls.action.value,
      since: isoFromLocalInput(controls.since.value),
      until: isoFromLocalInput(controls.until.value),
    });
  };
  const zone = utcOffset();
  return h(
    "form",
    { class: "filters", "aria-label": "Filter the audit log", onsubmit: submit },
    field("Repository", controls.repository),
    field("Actor", controls.actor),
    field("Action", controls.action),
    field(`From (local time, ${zone})`, controls.since),
    field(`Before (local time, ${zone})`, controls.until),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit" }, "Apply filters"),
      h("a", { href: links.audit(), class: "button-like secondary" }, "Clear"),
    ),
    datalist("audit-repositories", repositories),
    datalist("audit-actors", facets.actors),
  );
}

function summary(value) {
  if (value === null || value === undefined) return "—";
  const text = JSON.stringify(value);
  return text.length > 90 ? `${text.slice(0, 89)}…` : text;
}

function change(event) {
  if (!event.before && !event.after) return h("span", { class: "muted" }, "—");
  const after = event.after || {};
  const before = event.before || {};
  if (event.action.startsWith("alias.")) {
    const from = before.version !== undefined && before.version !== null ? `v${before.version}` : "unset";
    const to = after.version !== undefined && after.version !== null ? `v${after.version}` : "deleted";
    return h("span", {}, `${from} → ${to}`, after.reason ? [" ", h("q", {}, after.reason)] : "");
  }
  return h(
    "details",
    {},
    h("summary", {}, summary(event.after || event.before)),
    event.before ? h("pre", { class: "json" }, `before: ${JSON.stringify(event.before, null, 2)}`) : null,
    event.after ? h("pre", { class: "json" }, `after: ${JSON.stringify(event.after, null, 2)}`) : null,
  );
}

function eventRow(event) {
  return [
    timeElement(event.at),
    h("a", { href: links.audit({ actor: event.actor }), title: `Only events by ${event.actor}` }, event.actor),
    h("a", { href: links.audit({ action: event.action }), title: `Only ${event.action} events` }, h("code", {}, event.action)),
    event.repository ? h("a", { href: links.repo(event.repository) }, event.repository) : h("span", { class: "muted" }, "—"),
    h("code", { class: "wrap" }, event.target),
    change(event),
    event.request_id ? h("code", { class: "wrap small" }, event.request_id) : "—",
  ];
}

export async function render(ctx) {
  const values = Object.fromEntries(FILTERS.map((key) => [key, ctx.params.get(key) || ""]));
  const offset = Math.max(0, Number.parseInt(ctx.params.get("offset") || "0", 10) || 0);
  const [facets, repos] = await Promise.all([
    api.get("/audit/facets").catch(() => ({ actions: [], actors: [] })),
    api.get("/repos", { limit: 1000 }).catch(() => ({ items: [] })),
  ]);
  const page = h(
    "div",
    {},
    h("h1", {}, "Audit log"),
    h(
      "p",
      { class: "lead" },
      "Every change and every pull, newest first: who, what, when, and the request it came from. " +
        "Entries are chained by hash (",
      h("code", {}, "lorry audit verify"),
      ").",
    ),
    filterForm(ctx, values, facets, repos.items.map((repo) => repo.id)),
  );
  let events;
  try {
    events = await api.get("/audit", { ...values, limit: PAGE_SIZE, offset });
  } catch (error) {
    add(page, errorBox(error, "Reading the audit log failed"));
    return page;
  }
  const shown = events.items.length;
  add(page, 
    h(
      "p",
      { class: "count", role: "status" },
      `${events.total} event${events.total === 1 ? "" : "s"}` + (shown < events.total ? `; showing ${offset + 1}–${offset + shown}` : ""),
    ),
  );
  if (!shown) {
    add(page, emptyNote("No event matches these filters."));
    return page;
  }
  add(page, 
    table(null, ["When", "Actor", "Action", "Repository", "Target", "Change", "Request id"], events.items.map(eventRow), {
      class: "audit",
    }),
  );
  const newer = offset > 0 ? links.audit({ ...values, offset: Math.max(0, offset - PAGE_SIZE) }) : null;
  const older = offset + PAGE_SIZE < events.total ? links.audit({ ...values, offset: offset + PAGE_SIZE }) : null;
  if (newer || older) {
    add(page, 
      h(
        "nav",
        { class: "pager", "aria-label": "Pages of the audit log" },
        newer ? h("a", { href: newer }, "← Newer") : null,
        older ? h("a", { href: older }, "Older →") : null,
      ),
    );
  }
  return page;
}
