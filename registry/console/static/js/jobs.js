// Page: composition jobs; refreshed every few seconds while one is queued or running.
import * as api from "./api.js";
import { add, emptyNote, errorBox, field, h, select, stateBadge, table } from "./dom.js";
import { links, localStamp, timeElement, versionLink } from "./format.js";

const POLL_MS = 2000;
const STATES = ["queued", "running", "succeeded", "failed", "cancelled"];
const ACTIVE = new Set(["queued", "running"]);

function progress(job) {
  const { done, total, module } = job.progress;
  if (!total) return h("span", { class: "muted" }, job.state === "queued" ? "waiting" : "—");
  const label = `${done} of ${total} modules`;
  return h(
    "div",
    { class: "progress" },
    h("progress", { max: total, value: done, "aria-label": `Progress of job ${job.id}` }, label),
    h("span", {}, label),
    ACTIVE.has(job.state) && module ? h("span", { class: "muted module" }, module) : null,
  );
}

function outcome(job) {
  if (job.error) {
    return h(
      "div",
      { class: "job-error" },
      h("strong", {}, job.error.code || "error"),
      ": ",
      job.error.message || "",
    );
  }
  if (job.result) return versionLink(job.result.repository, job.result.version);
  return h("span", { class: "muted" }, ACTIVE.has(job.state) ? "in progress" : "—");
}

const COLUMNS = ["Job", "State", "Target", "Progress", "Result or error", "Submitted", "Took", "Log"];

function detailsBody(job) {
  return h(
    "div",
    { class: "job-details" },
    h("h3", {}, `Job ${job.id}`),
    h(
      "ul",
      { class: "inputs", "aria-label": "Inputs" },
      job.inputs.map((input) =>
        h(
          "li",
          {},
          input.role === "base" ? "base: " : "",
          versionLink(input.repository, input.version),
          input.weight !== null && input.weight !== undefined ? ` × ${input.weight}` : "",
          h("span", { class: "muted" }, ` (asked as ${input.ref})`),
        ),
      ),
    ),
    h(
      "ol",
      { class: "log", "aria-label": "Log" },
      job.log.map((entry) => h("li", {}, timeElement(entry.at), " ", entry.message)),
    ),
    h("pre", { class: "json", tabindex: "0", "aria-label": "Recipe" }, JSON.stringify(job.recipe, null, 2)),
  );
}

/** The job's row and, below it, a full-width row with its log that a button shows or hides. */
function jobRows(job, openIds) {
  const open = openIds.has(job.id);
  const detailsId = `job-details-${job.id}`;
  const detailsRow = h(
    "tr",
    { id: detailsId, class: "details-row", hidden: !open },
    h("td", { colspan: COLUMNS.length }, detailsBody(job)),
  );
  const toggle = h(
    "button",
    {
      type: "button",
      class: "secondary small toggle",
      id: `job-toggle-${job.id}`,
      "aria-expanded": String(open),
      "aria-controls": detailsId,
      "data-job": job.id,
      onclick: () => {
        const show = detailsRow.hidden;
        detailsRow.hidden = !show;
        toggle.setAttribute("aria-expanded", String(show));
        toggle.textContent = show ? "Hide" : "Show";
        if (show) openIds.add(job.id);
        else openIds.delete(job.id);
      },
    },
    open ? "Hide" : "Show",
  );
  const cells = [
    h("code", { title: job.id }, job.id.slice(0, 12)),
    stateBadge(job.state),
    [
      h("a", { href: links.repo(job.target), class: "nowrap" }, job.target),
      h("span", { class: "muted sub" }, job.kind ? `${job.kind}: ${job.output_kind}` : job.output_kind),
    ],
    progress(job),
    outcome(job),
    [timeElement(job.created_at), h("span", { class: "muted sub" }, `by ${job.created_by}`)],
    job.duration_s !== null && job.duration_s !== undefined
      ? h("span", { class: "nowrap" }, `${job.duration_s.toFixed(1)} s`)
      : "—",
    toggle,
  ];
  return [h("tr", { class: "job", "data-job": job.id }, cells.map((cell) => h("td", {}, cell))), detailsRow];
}

function jobsTable(items, openIds) {
  return table(null, COLUMNS, items.flatMap((job) => jobRows(job, openIds)), { class: "jobs" });
}

function filterForm(ctx, state, repository) {
  const stateSelect = select(
    { id: "job-state", name: "state" },
    [["", "any"], ...STATES.map((value) => [value, value])],
    state,
  );
  const repoInput = h("input", { id: "job-repository", name: "repository", type: "text", value: repository, placeholder: "acme/sql-formal" });
  return h(
    "form",
    {
      class: "filters",
      "aria-label": "Filter jobs",
      onsubmit: (event) => {
        event.preventDefault();
        ctx.navigate("/jobs", { state: stateSelect.value, repository: repoInput.value.trim() });
      },
    },
    field("State", stateSelect),
    field("Target repository", repoInput),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Filter")),
  );
}

async function fetchJobs(jobId, state, repository) {
  if (jobId) {
    const job = await api.get(api.path("jobs", jobId));
    return { items: [job], total: 1 };
  }
  return api.get("/jobs", { state, repository, limit: 100 });
}

export async function render(ctx) {
  const state = ctx.params.get("state") || "";
  const repository = ctx.params.get("repository") || "";
  const jobId = ctx.params.get("job") || "";
  const body = h("div", { id: "jobs-body" });
  const liveNote = h("p", { class: "live-note", role: "status" });
  const page = h(
    "div",
    {},
    h("h1", {}, jobId ? `Job ${jobId}` : "Jobs"),
    h(
      "p",
      { class: "lead" },
      "Compositions (",
      h("code", {}, "POST /api/v1/compositions"),
      ") and exports (",
      h("code", {}, "lorry export"),
      ") that this registry runs. Running ones update live; failed ones say why.",
    ),
    jobId ? h("p", {}, h("a", { href: links.jobs() }, "All jobs")) : filterForm(ctx, state, repository),
    liveNote,
    body,
  );
  const openIds = new Set(jobId ? [jobId] : []);
  let timer = null;
  ctx.onLeave(() => clearTimeout(timer));

  const refresh = async () => {
    let list;
    try {
      list = await fetchJobs(jobId, state, repository);
    } catch (error) {
      if (!ctx.isCurrent()) return;
      body.replaceChildren(errorBox(error, "Listing jobs failed"));
      liveNote.textContent = "";
      return;
    }
    if (!ctx.isCurrent()) return;
    const focusedId = body.contains(document.activeElement) ? document.activeElement.id : null;
    body.replaceChildren();
    add(
      body,
      list.items.length ? jobsTable(list.items, openIds) : emptyNote("No jobs match."),
      list.total > list.items.length ? h("p", { class: "hint" }, `Showing the newest ${list.items.length} of ${list.total}.`) : null,
    );
    if (focusedId) {
      const again = document.getElementById(focusedId);
      if (again) again.focus();
    }
    const active = list.items.filter((job) => ACTIVE.has(job.state)).length;
    if (active) {
      liveNote.textContent = `${active} job${active === 1 ? "" : "s"} in progress: refreshing every ${POLL_MS / 1000} s (last ${localStamp(new Date())}).`;
      timer = setTimeout(refresh, POLL_MS);
    } else {
      liveNote.textContent = `Updated ${localStamp(new Date())}; no job in progress.`;
    }
  };
  await refresh();
  return page;
}
