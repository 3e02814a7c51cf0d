// Page: one alias: its moves as a timeline, and what it pointed at on a given date.
import * as api from "./api.js";
import { add, breadcrumbs, emptyNote, errorBox, field, h } from "./dom.js";
import {
  formatWeight,
  isoFromLocalInput,
  links,
  localInputValue,
  parseTime,
  timeElement,
  utcOffset,
  versionLink,
} from "./format.js";

function move(entry, repository) {
  const version = (number) => h("a", { href: links.repo(repository, number) }, `v${number}`);
  if (entry.from_version === null && entry.to_version !== null) return ["set to ", version(entry.to_version)];
  if (entry.to_version === null) {
    return entry.from_version === null ? "deleted" : ["deleted (was ", version(entry.from_version), ")"];
  }
  if (entry.from_version === entry.to_version) return ["set again to ", version(entry.to_version)];
  return [version(entry.from_version), h("span", { "aria-label": " moved to " }, " → "), version(entry.to_version)];
}

function timeline(ctx, repository, alias, history) {
  const section = h(
    "section",
    { "aria-labelledby": "timeline-heading" },
    h("h2", { id: "timeline-heading" }, "Timeline"),
    h("p", { class: "hint" }, "Every move of the alias, oldest first, from the audit log."),
  );
  if (!history.items.length) {
    add(section, emptyNote(`${alias} was never set.`));
    return section;
  }
  const last = history.items.length - 1;
  add(section, 
    h(
      "ol",
      { class: "timeline", "aria-label": `Moves of ${alias}` },
      history.items.map((entry, index) =>
        h(
          "li",
          { class: index === last ? "latest" : null },
          h("div", { class: "when" }, timeElement(entry.at), index === last ? h("span", { class: "badge" }, "latest move") : null),
          h("div", { class: "what" }, h("strong", {}, `${alias}: `), move(entry, repository)),
          h(
            "div",
            { class: "who" },
            "by ",
            h("span", { class: "actor" }, entry.actor),
            " · ",
            entry.reason ? h("q", {}, entry.reason) : h("span", { class: "muted" }, "no reason given"),
          ),
          h(
            "a",
            { class: "small", href: links.alias(repository, alias, entry.at) },
            "What it pointed at right after this move",
          ),
        ),
      ),
    ),
  );
  return section;
}

async function madeOf(repository, version) {
  const [namespace, name] = repository.split("/");
  try {
    const node = await api.get(`${api.path("repos", namespace, name, "versions", String(version))}/lineage`);
    if (!node.parents.length) return h("p", {}, `v${version} was pushed, not composed: it has no parents.`);
    return h(
      "div",
      {},
      h("p", {}, `v${version} is a `, h("strong", {}, node.method || "composition"), " of:"),
      h(
        "ul",
        {},
        node.parents.map((parent) =>
          h(
            "li",
            {},
            versionLink(parent.repository, parent.version),
            parent.weight !== null ? ` ${formatWeight(parent.weight)}` : "",
            parent.role === "base" ? " (base model)" : "",
          ),
        ),
      ),
      h("p", {}, h("a", { href: links.lineage(repository, version) }, "The whole lineage, down to the published adapters")),
    );
  } catch (error) {
    return errorBox(error, "Its lineage could not be read");
  }
}

async function answer(repository, alias, iso) {
  const [namespace, name] = repository.split("/");
  const box = h("div", { id: "at-answer", class: "answer", role: "status", "aria-live": "polite" });
  let found;
  try {
    found = await api.get(`${api.path("repos", namespace, name, "aliases", alias)}/at`, { time: iso });
  } catch (error) {
    add(box, errorBox(error, "The lookup failed"));
    return box;
  }
  if (found.version === null) {
    add(box, 
      h("p", { class: "verdict" }, "At ", timeElement(found.time), `, ${alias} did not exist (it was not set yet, or had been deleted).`),
    );
    return box;
  }
  add(box, 
    h(
      "p",
      { class: "verdict" },
      "At ",
      timeElement(found.time),
      `, ${alias} pointed at `,
      h("a", { href: links.repo(repository, found.version), class: "answer-version" }, `${repository} v${found.version}`),
      ".",
    ),
    h(
      "p",
      {},
      "It was moved there ",
      timeElement(found.since),
      ` by ${found.actor}`,
      found.reason ? [": ", h("q", {}, found.reason)] : " (no reason given)",
      ".",
    ),
    await madeOf(repository, found.version),
  );
  return box;
}

function lookupForm(ctx, repository, alias, at) {
  const initial = parseTime(at) || new Date();
  const input = h("input", {
    id: "at-input",
    name: "at",
    type: "datetime-local",
    step: "0.001",
    required: true,
    value: localInputValue(initial),
  });
  const error = h("p", { class: "form-error", role: "alert" });
  const submit = (event) => {
    event.preventDefault();
    const iso = isoFromLocalInput(input.value);
    if (!iso) {
      error.textContent = "Pick a date and a time.";
      return;
    }
    ctx.navigate(links.alias(repository, alias).slice(1).split("?")[0], { at: iso });
  };
  return h(
    "form",
    { class: "filters", onsubmit: submit, "aria-label": `What ${alias} pointed at` },
    field(`Date and time (your local time, ${utcOffset(initial)})`, input),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Look up")),
    error,
  );
}

export async function render(ctx, namespace, name, alias) {
  const repository = `${namespace}/${name}`;
  const aliasRoute = api.path("repos", namespace, name, "aliases", alias);
  const [history, current] = await Promise.all([
    api.get(`${aliasRoute}/history`),
    api.getOptional(aliasRoute),
  ]);
  const at = ctx.params.get("at");
  const page = h(
    "div",
    {},
    breadcrumbs([["Repositories", "#/repos"], [repository, links.repo(repository)], [`alias ${alias}`]]),
    h("h1", {}, `${alias} of ${repository}`),
    current
      ? h(
          "p",
          { class: "lead" },
          `Now ${alias} points at `,
          versionLink(repository, current.version),
          ", set by ",
          current.updated_by,
          " at ",
          timeElement(current.updated_at),
          ".",
        )
      : h("p", { class: "lead" }, `${alias} is not set now.`),
  );
  const lookup = h(
    "section",
    { "aria-labelledby": "at-heading", class: "lookup" },
    h("h2", { id: "at-heading" }, `What was ${alias} at a given time?`),
    lookupForm(ctx, repository, alias, at),
  );
  if (at) add(lookup, await answer(repository, alias, at));
  add(page, lookup, timeline(ctx, repository, alias, history));
  return page;
}
