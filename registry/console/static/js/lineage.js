// Page: what a version was made of (graph and list), and what was made from it.
import * as api from "./api.js";
import { add, breadcrumbs, emptyNote, errorBox, h, table } from "./dom.js";
import { digestElement, formatWeight, links, timeElement, versionLink } from "./format.js";
import { lineageSvg } from "./graph.js";

function treeList(node) {
  return h(
    "ul",
    { class: "tree" },
    node.parents.map((parent) => {
      const sub = parent.lineage;
      return h(
        "li",
        {},
        versionLink(parent.repository, parent.version),
        parent.weight !== null && parent.weight !== undefined ? h("span", { class: "weight" }, ` ${formatWeight(parent.weight)}`) : null,
        parent.role === "base" ? " (base model)" : null,
        sub ? [`, itself a ${sub.method || "composition"} of:`, treeList(sub)] : h("span", { class: "muted" }, " (pushed)"),
      );
    }),
  );
}

function ancestry(lineage) {
  const section = h(
    "section",
    { "aria-labelledby": "made-of-heading" },
    h("h2", { id: "made-of-heading" }, "Made of"),
  );
  if (!lineage.parents.length) {
    add(section, 
      emptyNote(`${lineage.repository} v${lineage.version} was pushed, not composed: it has no parents.`),
    );
    return section;
  }
  add(section, 
    h(
      "p",
      { class: "method" },
      "Method: ",
      h("strong", {}, lineage.method || "unknown"),
      lineage.job ? [" · job ", h("a", { href: links.jobs({ job: lineage.job }) }, h("code", {}, lineage.job))] : null,
    ),
    h("div", { class: "graph-wrap", tabindex: "-1" }, lineageSvg(lineage)),
    h(
      "p",
      { class: "hint" },
      "Inputs on the left flow into the version on the right; each arrow carries the input's weight " +
        "(negative: subtracted). Boxes link to the versions.",
    ),
    h("h3", {}, "As a list"),
    h(
      "div",
      { class: "tree-root" },
      versionLink(lineage.repository, lineage.version),
      ` = ${lineage.method || "composition"} of:`,
      treeList(lineage),
    ),
  );
  return section;
}

function derivedSection(derived) {
  const section = h(
    "section",
    { "aria-labelledby": "derived-heading" },
    h("h2", { id: "derived-heading" }, "Derived from it"),
    h("p", { class: "hint" }, "Versions composed from this one, directly (depth 1) or through other compositions, and the aliases that point at them."),
  );
  if (!derived.items.length) {
    add(section, emptyNote("Nothing is composed from this version yet."));
    return section;
  }
  add(section, 
    table(
      null,
      ["Version", "Digest", "Composed from", "Depth", "Aliases pointing at it"],
      derived.items.map((item) => [
        versionLink(item.repository, item.version),
        digestElement(item.digest),
        h("code", { class: "wrap" }, item.via),
        String(item.depth),
        item.aliases.length
          ? h(
              "ul",
              { class: "inline-list" },
              item.aliases.map((alias) => h("li", {}, h("a", { class: "alias", href: links.alias(item.repository, alias) }, alias))),
            )
          : h("span", { class: "muted" }, "none"),
      ]),
      { class: "derived" },
    ),
  );
  return section;
}

export async function render(ctx, namespace, name, ref) {
  const repository = `${namespace}/${name}`;
  const versionRoute = api.path("repos", namespace, name, "versions", ref);
  const version = await api.get(versionRoute);
  const [lineage, derived] = await Promise.all([
    api.get(`${versionRoute}/lineage`).catch((error) => ({ error })),
    api.get(`${versionRoute}/derived`).catch((error) => ({ error })),
  ]);
  return h(
    "div",
    {},
    breadcrumbs([
      ["Repositories", "#/repos"],
      [repository, links.repo(repository)],
      [`v${version.version}`, links.repo(repository, version.version)],
      ["lineage"],
    ]),
    h("h1", {}, `Lineage of ${repository} v${version.version}`),
    h(
      "p",
      { class: "lead" },
      digestElement(version.digest),
      " · published ",
      timeElement(version.created_at),
      ` by ${version.created_by}`,
      version.aliases.length ? ` · aliases: ${version.aliases.join(", ")}` : "",
      version.message ? [" · ", h("q", {}, version.message)] : "",
    ),
    lineage.error ? errorBox(lineage.error, "The lineage could not be read") : ancestry(lineage),
    derived.error ? errorBox(derived.error, "Derived versions could not be read") : derivedSection(derived),
  );
}
