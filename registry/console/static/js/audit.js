// Page: the audit log, filtered by repository, actor, action and time. Changes by default;
// pulls (file downloads, from the access log) only when "Show pulls" is ticked.
import * as api from "./api.js";
import { add, emptyNote, errorBox, field, h, select, table } from "./dom.js";
import {
  formatBytes,
  isoFromLocalInput,
  links,
  localInputValue,
  parseTime,
  splitRepository,
  timeElement,
  utcOffset,
} from "./format.js";

const PAGE_SIZE = 100;
const FILTERS = ["repository", "actor", "action", "since", "until", "pulls"];

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
      pulls: pulls.checked ? "1" : "",
    });
  };
  const pulls = h("input", { id: "audit-pulls", name: "pulls", type: "checkbox", value: "1", checked: values.pulls === "1" });
  pulls.addEventListener("change", submit);
  const zone = utcOffset();
  return h(
    "form",
    { class: "filters", "aria-label": "Filter the audit log", onsubmit: submit },
    field("Repository", controls.repository),
    field("Actor", controls.actor),
    field("Action", controls.action),
    field(`From (local time, ${zone})`, controls.since),
    field(`Before (local time, ${zone})`, controls.until),
    h("div", { class: "check" }, pulls, h("label", { for: "audit-pulls" }, "Show pulls (file downloads)")),
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

function pullRow(pull) {
  return [
    timeElement(pull.at),
    h("a", { href: links.audit({ actor: pull.actor, pulls: "1" }) }, pull.actor),
    h("a", { href: links.repo(pull.repository, pull.version) }, `${pull.repository} v${pull.version}`),
    h("code", { class: "wrap" }, pull.path),
    h("span", { class: "number" }, formatBytes(pull.size)),
    `${pull.via}${pull.redirect ? " (redirect)" : ""}`,
    h("code", { class: "wrap small" }, pull.user_agent || "—"),
  ];
}

/** Pulls per version of one repository (the repository page shows the same counts). */
async function pullCounts(repository) {
  const [namespace, name] = splitRepository(repository);
  if (!namespace || !name) return null;
  const versions = await api.getOptional(`${api.path("repos", namespace, name)}/versions`, { limit: 100 }).catch(() => null);
  if (!versions || !versions.items.length) return null;
  return table(
    `Pulls per version of ${repository}`,
    ["Version", "Files pulled"],
    versions.items.map((version) => [
      h("a", { href: links.repo(repository, version.version) }, `v${version.version}`),
      h("span", { class: "number" }, String(version.downloads ?? 0)),
    ]),
    { class: "pull-counts" },
  );
}

async function pullSection(values, offset) {
  const section = h(
    "section",
    { id: "pulls", "aria-labelledby": "pulls-heading" },
    h("h2", { id: "pulls-heading" }, "Pulls"),
    h("p", { class: "hint" }, "Every file handed out, newest first (the access log; written within a second)."),
  );
  if (values.repository) add(section, await pullCounts(values.repository));
  let pulls;
  try {
    pulls = await api.get("/access-log", {
      repository: values.repository,
      actor: values.actor,
      since: values.since,
      until: values.until,
      limit: PAGE_SIZE,
      offset,
    });
  } catch (error) {
    add(section, errorBox(error, "Reading the pulls failed"));
    return section;
  }
  add(section, h("p", { class: "count", id: "pull-count" }, `${pulls.total} pull${pulls.total === 1 ? "" : "s"}` + (pulls.items.length < pulls.total ? `; showing the newest ${pulls.items.length}` : "")));
  if (pulls.items.length) {
    add(section, table(null, ["When", "Actor", "Version", "File", "Size", "Via", "User agent"], pulls.items.map(pullRow), { class: "pulls" }));
  }
  return section;
}

export async function render(ctx) {
  const values = Object.fromEntries(FILTERS.map((key) => [key, ctx.params.get(key) || ""]));
  const withPulls = values.pulls === "1";
  const kind = withPulls ? "all" : "mutation";
  const query = { repository: values.repository, actor: values.actor, action: values.action, since: values.since, until: values.until };
  const offset = Math.max(0, Number.parseInt(ctx.params.get("offset") || "0", 10) || 0);
  const [facets, repos] = await Promise.all([
    api.get("/audit/facets", { kind }).catch(() => ({ actions: [], actors: [] })),
    api.get("/repos", { limit: 1000 }).catch(() => ({ items: [] })),
  ]);
  const page = h(
    "div",
    {},
    h("h1", {}, "Audit log"),
    h(
      "p",
      { class: "lead" },
      withPulls
        ? "Every change and every pull, newest first: who, what, when, and the request it came from. "
        : [
            "Every change, newest first: who, what, when, and the request it came from. Pulls (file downloads) are hidden: ",
            h("a", { href: links.audit({ ...values, pulls: "1" }) }, "show them"),
            "; each repository page counts them per version. ",
          ],
      "Entries are chained by hash (",
      h("code", {}, "lorry audit verify"),
      ").",
    ),
    filterForm(ctx, values, facets, repos.items.map((repo) => repo.id)),
  );
  let events;
  try {
    events = await api.get("/audit", { ...query, kind, limit: PAGE_SIZE, offset });
  } catch (error) {
    add(page, errorBox(error, "Reading the audit log failed"));
    return page;
  }
  const shown = events.items.length;
  const noun = withPulls ? "event" : "change";
  add(page,
    h(
      "p",
      { class: "count", role: "status" },
      `${events.total} ${noun}${events.total === 1 ? "" : "s"}` + (shown < events.total ? `; showing ${offset + 1}–${offset + shown}` : ""),
    ),
  );
  if (!shown) {
    add(page, emptyNote("No event matches these filters."));
  } else {
    add(page,
      table(null, ["When", "Actor", "Action", "Repository", "Target", "Change", "Request id"], events.items.map(eventRow), {
        class: "audit",
      }),
    );
  }
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
  if (withPulls && !values.action) add(page, await pullSection(values, offset));
  return page;
}
