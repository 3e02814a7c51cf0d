// Page: search and list repositories.
import * as api from "./api.js";
import { add, emptyNote, errorBox, field, h, select, table } from "./dom.js";
import { links } from "./format.js";

const PAGE_SIZE = 50;

function searchForm(ctx, values) {
  const controls = {
    q: h("input", {
      id: "repo-search",
      name: "q",
      type: "search",
      value: values.q,
      placeholder: "name, description or tag",
    }),
    kind: select(
      { id: "repo-kind", name: "kind" },
      [
        ["", "any"],
        ["adapter", "adapter"],
        ["model", "model"],
      ],
      values.kind,
    ),
    tag: h("input", { id: "repo-tag", name: "tag", type: "text", value: values.tag }),
    base_model: h("input", { id: "repo-base-model", name: "base_model", type: "text", value: values.base_model }),
  };
  const submit = (event) => {
    event.preventDefault();
    ctx.navigate("/repos", {
      q: controls.q.value.trim(),
      kind: controls.kind.value,
      tag: controls.tag.value.trim(),
      base_model: controls.base_model.value.trim(),
    });
  };
  return h(
    "form",
    { class: "filters", role: "search", "aria-label": "Repositories", onsubmit: submit },
    field("Search repositories", controls.q),
    field("Kind", controls.kind),
    field("Tag", controls.tag),
    field("Base model", controls.base_model),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Search")),
  );
}

function aliasLinks(repo) {
  const entries = Object.entries(repo.aliases || {}).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return h("span", { class: "muted" }, "none");
  return h(
    "ul",
    { class: "inline-list" },
    entries.map(([alias, version]) =>
      h("li", {}, h("a", { href: links.alias(repo.id, alias), class: "alias" }, `${alias} → v${version}`)),
    ),
  );
}

function tagList(tags) {
  if (!tags || !tags.length) return h("span", { class: "muted" }, "—");
  return h(
    "ul",
    { class: "inline-list" },
    tags.map((tag) => h("li", {}, h("a", { href: links.repos({ tag }), class: "tag" }, tag))),
  );
}

function repoRow(repo) {
  return [
    h(
      "div",
      {},
      h("a", { href: links.repo(repo.id), class: "repo-name" }, repo.id),
      repo.description ? h("p", { class: "description" }, repo.description) : null,
    ),
    repo.kind,
    repo.base_model ? h("code", { class: "wrap" }, repo.base_model) : h("span", { class: "muted" }, "—"),
    tagList(repo.tags),
    repo.latest_version
      ? h("a", { href: links.repo(repo.id, repo.latest_version) }, `v${repo.latest_version}`)
      : h("span", { class: "muted" }, "none"),
    aliasLinks(repo),
  ];
}

function pager(ctx, values, offset, total) {
  const previous = offset > 0 ? links.repos({ ...values, offset: Math.max(0, offset - PAGE_SIZE) }) : null;
  const next = offset + PAGE_SIZE < total ? links.repos({ ...values, offset: offset + PAGE_SIZE }) : null;
  if (!previous && !next) return null;
  return h(
    "nav",
    { class: "pager", "aria-label": "Pages of repositories" },
    previous ? h("a", { href: previous }, "← Previous") : null,
    next ? h("a", { href: next }, "Next →") : null,
  );
}

export async function render(ctx) {
  const values = {
    q: ctx.params.get("q") || "",
    kind: ctx.params.get("kind") || "",
    tag: ctx.params.get("tag") || "",
    base_model: ctx.params.get("base_model") || "",
  };
  const offset = Math.max(0, Number.parseInt(ctx.params.get("offset") || "0", 10) || 0);
  const page = h(
    "div",
    {},
    h("h1", {}, "Repositories"),
    h(
      "p",
      { class: "lead" },
      "Adapters and models in this registry. Open one for its versions, aliases, model card and files; " +
        "an alias leads to its history and to what it pointed at on any date.",
    ),
    searchForm(ctx, values),
  );
  let list;
  try {
    list = await api.get("/repos", { ...values, limit: PAGE_SIZE, offset });
  } catch (error) {
    add(page, errorBox(error, "Listing repositories failed"));
    return page;
  }
  const filtered = Object.values(values).some(Boolean);
  const shown = list.items.length;
  add(page, 
    h(
      "p",
      { class: "count", role: "status" },
      `${list.total} ${list.total === 1 ? "repository" : "repositories"}${filtered ? " match" : ""}` +
        (shown < list.total ? `; showing ${offset + 1}–${offset + shown}` : ""),
    ),
  );
  if (!shown) {
    add(page, 
      emptyNote(
        filtered
          ? "Nothing matches these filters."
          : "No repositories yet (or none that you may read). Push one with `lorry push ./adapter acme/name`.",
      ),
    );
    return page;
  }
  add(page, 
    table(
      "Repositories",
      ["Repository", "Kind", "Base model", "Tags", "Latest", "Aliases"],
      list.items.map(repoRow),
      { class: "repos" },
    ),
    pager(ctx, values, offset, list.total),
  );
  return page;
}
