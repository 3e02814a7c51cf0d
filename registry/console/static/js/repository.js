// Page: one repository: aliases, versions, and one version's files, model card and snippets.
import * as api from "./api.js";
import { add, breadcrumbs, emptyNote, errorBox, field, h, select, snippet, table } from "./dom.js";
import { evalSection } from "./evals.js";
import { digestElement, formatBytes, links, timeElement } from "./format.js";

const PAGE_SIZE = 50;

/** The base model: a link to its repository here, a Hub id, or nothing (a trainer's local path
 * is never shown: the API leaves it out). */
function baseModelFact(repo) {
  if (repo.base_model_link) {
    const [id] = repo.base_model_link.split("@");
    return h("a", { href: links.repo(id) }, h("code", { class: "wrap" }, repo.base_model_link));
  }
  return repo.base_model ? h("code", { class: "wrap" }, repo.base_model) : "—";
}

/** The base model as the snippets load it through HF_ENDPOINT: a linked repository of this
 * registry (id and revision), or a placeholder saying how to link one. */
function snippetBase(repo) {
  if (!repo.base_model_link) return { id: "<base model>", revision: null };
  const [id, revision] = repo.base_model_link.split("@");
  return { id, revision: revision || null };
}

function facts(repo) {
  const row = (term, value) => [h("dt", {}, term), h("dd", {}, value)];
  return h(
    "dl",
    { class: "facts" },
    row("Kind", repo.kind),
    row("Base model", baseModelFact(repo)),
    row(
      "Tags",
      repo.tags.length
        ? h(
            "ul",
            { class: "inline-list" },
            repo.tags.map((tag) => h("li", {}, h("a", { class: "tag", href: links.repos({ tag }) }, tag))),
          )
        : "—",
    ),
    row("Created", [timeElement(repo.created_at), ` by ${repo.created_by}`]),
    row("Pulls", [
      h("span", { class: "number" }, `${repo.downloads ?? 0} files`),
      " (",
      h("a", { href: links.audit({ repository: repo.id, pulls: "1" }) }, "who pulled what"),
      ")",
    ]),
  );
}

/** What Hugging Face clients get for `main`: the version of the alias `main` follows, or the
 * latest version. `missing` names a followed alias that does not exist (then: the latest). */
export function mainServes(repo) {
  if (repo.main_alias && repo.aliases[repo.main_alias] !== undefined) {
    return { version: repo.aliases[repo.main_alias], via: repo.main_alias, missing: null };
  }
  return { version: repo.latest_version, via: null, missing: repo.main_alias || null };
}

/** "main → production → v1", what it means, and the latest (and the shown) version a click away. */
function mainSection(repo, served, shown) {
  const arrow = h("span", { class: "arrow", "aria-hidden": "true" }, " → ");
  const chain = h(
    "p",
    { class: "chain", "aria-label": served.via ? `main follows ${served.via}, which points at v${served.version}` : `main serves the latest version, v${served.version}` },
    h("code", {}, "main"),
    arrow,
    served.via ? h("a", { href: links.alias(repo.id, served.via) }, h("code", {}, served.via)) : h("span", {}, "latest"),
    arrow.cloneNode(true),
    h("a", { href: links.repo(repo.id, served.version) }, `v${served.version}`),
  );
  const notes = [];
  if (served.missing) {
    notes.push(`main follows the alias ${served.missing}, which does not exist: clients get the latest version.`);
  }
  if (served.via && served.version !== repo.latest_version) {
    notes.push([
      `The latest version is v${repo.latest_version}, which main does not serve: `,
      h("a", { id: "show-latest", href: links.repo(repo.id, repo.latest_version) }, `show v${repo.latest_version}`),
      ".",
    ]);
  } else if (served.via) {
    notes.push(`v${served.version} is also the latest version.`);
  }
  if (shown !== null && shown !== served.version) {
    notes.push([
      `Shown below: v${shown}, not what main serves; `,
      h("a", { id: "show-main", href: links.repo(repo.id) }, `back to v${served.version}`),
      ".",
    ]);
  }
  return h(
    "section",
    { id: "main-serves", class: "main-serves", "aria-labelledby": "main-heading" },
    h("h2", { id: "main-heading", class: "visually-hidden" }, "What main serves"),
    chain,
    h(
      "p",
      { class: "hint" },
      "What Hugging Face clients (transformers, PEFT, vLLM) get when they ask for ",
      h("code", {}, "main"),
      served.via ? "" : " (it follows no alias)",
      ".",
    ),
    notes.map((note) => h("p", { class: "note" }, note)),
  );
}

// What each deployment target following the alias serves: "vllm at URL serves v3 since …".
function servingCell(alias, deployments) {
  const targets = (deployments?.items || []).filter((target) => target.alias === alias.name);
  if (!targets.length) return h("span", { class: "muted" }, "—");
  return h(
    "ul",
    { class: "serving" },
    targets.map((target) =>
      h(
        "li",
        {},
        `${target.kind} at ${target.url} (${target.lora_name}) `,
        target.served_version === null
          ? "serves nothing from here yet"
          : [`serves v${target.served_version} since `, timeElement(target.served_since)],
        target.pending ? ` · rollout pending` : "",
        target.last_error ? h("span", { class: "error" }, ` · last error: ${target.last_error}`) : "",
      ),
    ),
  );
}

function aliasSection(repo, aliases, deployments) {
  const section = h("section", { "aria-labelledby": "aliases-heading" }, h("h2", { id: "aliases-heading" }, "Aliases"));
  if (!aliases.items.length) {
    add(section, emptyNote("No alias points at a version of this repository."));
    return section;
  }
  add(section, 
    table(
      null,
      ["Alias", "Points at", "Serving", "Moved by", "When", "Reason", "History"],
      aliases.items.map((alias) => [
        h("code", {}, alias.name),
        h("a", { href: links.repo(repo.id, alias.version) }, `v${alias.version}`),
        servingCell(alias, deployments),
        alias.updated_by,
        timeElement(alias.updated_at),
        alias.reason || h("span", { class: "muted" }, "no reason given"),
        h(
          "a",
          { href: links.alias(repo.id, alias.name), "aria-label": `History of ${alias.name}` },
          "History and time travel",
        ),
      ]),
    ),
  );
  return section;
}

function versionSection(repo, versions, selected, offset) {
  const section = h(
    "section",
    { "aria-labelledby": "versions-heading" },
    h("h2", { id: "versions-heading" }, "Versions"),
    h("p", { class: "hint" }, "Newest first. Every version is immutable; its digest names its exact files."),
  );
  const rows = versions.items.map((version) => {
    const current = version.version === selected;
    return h(
      "tr",
      { class: current ? "selected" : null, "aria-current": current ? "true" : null },
      h(
        "td",
        {},
        h("a", { href: links.repo(repo.id, version.version) }, `v${version.version}`),
        current ? h("span", { class: "muted" }, " (shown below)") : null,
      ),
      h("td", {}, digestElement(version.digest)),
      h("td", { class: "number" }, formatBytes(version.size)),
      h("td", { class: "number" }, String(version.downloads ?? 0)),
      h("td", {}, version.created_by),
      h("td", {}, timeElement(version.created_at)),
      h("td", { class: "message" }, version.message || h("span", { class: "muted" }, "—")),
      h(
        "td",
        {},
        version.aliases.length
          ? h(
              "ul",
              { class: "inline-list" },
              version.aliases.map((alias) => h("li", {}, h("a", { class: "alias", href: links.alias(repo.id, alias) }, alias))),
            )
          : "",
      ),
      h(
        "td",
        {},
        h(
          "a",
          { href: links.lineage(repo.id, version.version) },
          version.lineage ? `Lineage (${version.lineage.method || "composed"})` : "Derived versions",
        ),
      ),
    );
  });
  add(section, 
    table(null, ["Version", "Digest", "Size", "Pulls", "Author", "Published", "Message", "Aliases", "Lineage"], rows),
  );
  const previous = offset > 0 ? links.repo(repo.id) + `?offset=${Math.max(0, offset - PAGE_SIZE)}` : null;
  const next = offset + PAGE_SIZE < versions.total ? `${links.repo(repo.id)}?offset=${offset + PAGE_SIZE}` : null;
  if (previous || next) {
    add(section, 
      h(
        "nav",
        { class: "pager", "aria-label": "Pages of versions" },
        previous ? h("a", { href: previous }, "← Newer") : null,
        next ? h("a", { href: next }, "Older →") : null,
      ),
    );
  }
  return section;
}

function snippetsFor(repo, version, aliases, session) {
  const endpoint = window.location.origin;
  const name = repo.name;
  const closed = session && session.mode === "closed";
  const revisionSelect = select(
    { id: "pull-revision", name: "revision" },
    [
      ...aliases.items.map((alias) => [alias.name, `${alias.name} (now v${alias.version})`]),
      [String(version.version), `${version.version} (this version, pinned)`],
    ],
    String(version.version),
  );
  const holder = h("div", { class: "snippets" });
  const build = () => {
    const revision = revisionSelect.value;
    const baseRef = snippetBase(repo);
    const base = baseRef.id;
    const baseRevision = baseRef.revision ? `, revision="${baseRef.revision}"` : "";
    const unlinked = repo.base_model_link
      ? ""
      : `# link the base model: lorry push DIR ${repo.id} --base-model NAMESPACE/NAME, or\n` +
        `# lorry's PATCH /api/v1/repos/${repo.id} {"base_model": "NAMESPACE/NAME"}\n`;
    const tokenLine = closed ? 'os.environ["HF_TOKEN"] = "lorry_…"  # a Lorry read token\n' : "";
    const cliToken = closed ? "LORRY_TOKEN=lorry_… " : "";
    const pull = `${cliToken}LORRY_URL=${endpoint} lorry pull ${repo.id}@${revision} ./${name}`;
    const python =
      repo.kind === "model"
        ? "import os\n" +
          `os.environ["HF_ENDPOINT"] = "${endpoint}"  # before importing transformers\n` +
          tokenLine +
          "from transformers import AutoModelForCausalLM\n\n" +
          `model = AutoModelForCausalLM.from_pretrained("${repo.id}", revision="${revision}")\n`
        : "import os\n" +
          `os.environ["HF_ENDPOINT"] = "${endpoint}"  # before importing peft / transformers\n` +
          tokenLine +
          "from peft import PeftModel\n" +
          "from transformers import AutoModelForCausalLM\n\n" +
          unlinked +
          `base = AutoModelForCausalLM.from_pretrained("${base}"${baseRevision})\n` +
          `model = PeftModel.from_pretrained(base, "${repo.id}", revision="${revision}")\n`;
    const main = repo.main_alias ? `the alias ${repo.main_alias}` : "the latest version";
    const vllm =
      repo.kind === "model"
        ? `HF_ENDPOINT=${endpoint} \\\n  vllm serve ${repo.id} --revision ${revision}`
        : `HF_ENDPOINT=${endpoint} \\\n  vllm serve ${base} --enable-lora --lora-modules ${name}=${repo.id}`;
    holder.replaceChildren(
      snippet("lorry pull", pull),
      snippet(repo.kind === "model" ? "transformers (HF_ENDPOINT)" : "PEFT (HF_ENDPOINT)", python),
      snippet(
        "vLLM",
        vllm,
        repo.kind === "model"
          ? null
          : `vLLM always asks for \`main\`, which here is ${main} (\`lorry repo set ${repo.id} --main-alias ALIAS\` changes it).`,
      ),
    );
  };
  revisionSelect.addEventListener("change", build);
  build();
  return h(
    "section",
    { "aria-labelledby": "use-heading" },
    h("h3", { id: "use-heading" }, "Use it"),
    field("Revision in the snippets", revisionSelect),
    holder,
  );
}

/** A download link for a file of the version; with a token, the download goes through fetch so
 * that the token travels as a header (a plain link cannot carry one). */
function downloadLink(repo, version, filePath, status) {
  const route = `${api.path("repos", repo.namespace, repo.name, "versions", String(version.version))}/files/${api.filePath(filePath)}`;
  const baseName = filePath.split("/").pop();
  return h(
    "a",
    {
      href: api.apiUrl(route),
      download: baseName,
      "aria-label": `Download ${filePath}`,
      onclick: async (event) => {
        if (!api.getToken()) return;
        event.preventDefault();
        status.replaceChildren(`Downloading ${filePath}…`);
        try {
          await api.download(route, baseName);
          status.replaceChildren(`Downloaded ${filePath}.`);
        } catch (error) {
          status.replaceChildren(errorBox(error, `Downloading ${filePath} failed`));
        }
      },
    },
    "Download",
  );
}

function fileSection(repo, version, status) {
  const rows = version.files.map((file) => [
    h("code", { class: "wrap" }, file.path),
    h("span", { class: "number" }, formatBytes(file.size)),
    digestElement(file.sha256),
    downloadLink(repo, version, file.path, status),
  ]);
  return h(
    "section",
    { "aria-labelledby": "files-heading" },
    h("h3", { id: "files-heading" }, `Files (${version.files.length}, ${formatBytes(version.size)})`),
    table(null, ["Path", "Size", "sha256", "Download"], rows, { class: "files" }),
  );
}

function exportSection(repo, version, exportsList, status) {
  const items = exportsList && Array.isArray(exportsList.items) ? exportsList.items : [];
  if (!items.length) return null;
  return h(
    "section",
    { "aria-labelledby": "exports-heading" },
    h("h3", { id: "exports-heading" }, `Exports (${items.length})`),
    h("p", { class: "hint" }, "Files built from this version (GGUF for llama.cpp, Ollama, LM Studio)."),
    table(
      null,
      ["Path", "Format", "Size", "sha256", "Built", "Download"],
      items.map((item) => [
        h("code", { class: "wrap" }, item.path),
        `${item.format} ${item.outtype}`,
        h("span", { class: "number" }, formatBytes(item.size)),
        digestElement(item.sha256),
        [timeElement(item.created_at), ` by ${item.created_by} (job `, h("a", { href: links.jobs({ job: item.job }) }, item.job.slice(0, 12)), ")"],
        downloadLink(repo, version, item.path, status),
      ]),
      { class: "exports" },
    ),
  );
}

function frontMatterValue(value) {
  if (value === null || value === undefined) return h("span", { class: "muted" }, "—");
  if (Array.isArray(value) && value.every((item) => typeof item !== "object" || item === null)) {
    return value.join(", ");
  }
  if (typeof value === "object") return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
  return String(value);
}

function cardSection(card) {
  const section = h("section", { "aria-labelledby": "card-heading" }, h("h3", { id: "card-heading" }, "Model card"));
  if (!card) return section;
  if (!card.path) {
    add(section, emptyNote("This version has no README.md."));
    return section;
  }
  const keys = Object.keys(card.front_matter || {});
  if (keys.length) {
    add(section, 
      table(
        "Front matter",
        ["Field", "Value"],
        keys.map((key) => [h("code", {}, key), frontMatterValue(card.front_matter[key])]),
        { class: "front-matter" },
      ),
    );
  }
  const body = h("div", { class: "markdown" });
  // Rendered by the server with raw HTML disabled and unsafe link schemes refused.
  body.innerHTML = card.html;
  add(section, h("article", { class: "card-body", "aria-label": "Model card text" }, body));
  return section;
}

export async function render(ctx, namespace, name) {
  const repoRoute = api.path("repos", namespace, name);
  const offset = Math.max(0, Number.parseInt(ctx.params.get("offset") || "0", 10) || 0);
  const [repo, versions, aliases, deployments] = await Promise.all([
    api.get(repoRoute),
    api.get(`${repoRoute}/versions`, { limit: PAGE_SIZE, offset }),
    api.get(`${repoRoute}/aliases`),
    api.getOptional(`${repoRoute}/deployments`).catch(() => null),
  ]);
  const page = h(
    "div",
    {},
    breadcrumbs([["Repositories", "#/repos"], [repo.id]]),
    h("h1", {}, repo.id, " ", h("span", { class: "badge kind" }, repo.kind)),
    repo.description ? h("p", { class: "lead" }, repo.description) : null,
    facts(repo),
  );
  const served = mainServes(repo);
  const ref = ctx.params.get("version") || (served.version ? String(served.version) : null);
  if (!ref) {
    add(page, aliasSection(repo, aliases, deployments), emptyNote("This repository has no version yet."));
    return page;
  }
  add(
    page,
    mainSection(repo, served, /^\d+$/.test(ref) ? Number(ref) : null),
    aliasSection(repo, aliases, deployments),
    versionSection(repo, versions, Number(ref), offset),
  );
  const versionRoute = `${repoRoute}/versions/${encodeURIComponent(ref)}`;
  const details = h("section", { id: "version-details", "aria-labelledby": "version-heading" });
  add(page, details);
  let version;
  try {
    version = await api.get(versionRoute);
  } catch (error) {
    add(details, h("h2", { id: "version-heading" }, `Version ${ref}`), errorBox(error));
    return page;
  }
  const downloadStatus = h("div", { class: "download-status", role: "status" });
  const [card, exportsList, results, history] = await Promise.all([
    api.get(`${versionRoute}/card`).catch((error) => ({ error })),
    api.getOptional(`${versionRoute}/exports`).catch(() => null),
    api.getOptional(`${versionRoute}/evals`).catch(() => null),
    api.getOptional(`${repoRoute}/evals`).catch(() => null),
  ]);
  add(details,
    h(
      "h2",
      { id: "version-heading" },
      `Version ${version.version}`,
      version.version === served.version ? [" ", h("span", { class: "badge" }, "served by main")] : null,
      version.version === repo.latest_version ? [" ", h("span", { class: "badge" }, "latest")] : null,
    ),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Digest"),
      h("dd", {}, h("code", { class: "wrap" }, version.digest)),
      h("dt", {}, "Commit id (Hugging Face)"),
      h("dd", {}, h("code", {}, version.commit)),
      h("dt", {}, "Published"),
      h("dd", {}, timeElement(version.created_at), ` by ${version.created_by}`),
      h("dt", {}, "Pulls"),
      h("dd", {}, `${version.downloads ?? 0} files downloaded`),
      h("dt", {}, "Message"),
      h("dd", {}, version.message || "—"),
      h("dt", {}, "Made of"),
      h(
        "dd",
        {},
        version.lineage
          ? h(
              "a",
              { href: links.lineage(repo.id, version.version) },
              `${version.lineage.method || "a composition"} of ${(version.lineage.parents || []).length} parents: see the lineage`,
            )
          : ["pushed, not composed; ", h("a", { href: links.lineage(repo.id, version.version) }, "what derives from it")],
      ),
    ),
    snippetsFor(repo, version, aliases, ctx.session),
    fileSection(repo, version, downloadStatus),
    exportSection(repo, version, exportsList, downloadStatus),
    downloadStatus,
    evalSection(results, history, version.version),
    card && card.error ? errorBox(card.error, "The model card could not be read") : cardSection(card),
  );
  return page;
}
