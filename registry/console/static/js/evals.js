// Evaluation results: the selected version's results as a table, and one chart per metric
// across the repository's versions (inline SVG), with the versions that hold aliases marked.
import { add, emptyNote, h, svg, table } from "./dom.js";

const W = 440;
const H = 170;
const PAD = { left: 48, right: 16, top: 16, bottom: 34 };

function metricName(item) {
  const name = `${item.task}/${item.metric}`;
  return item.filter && item.filter !== "none" ? `${name},${item.filter}` : name;
}

function number(value) {
  if (value === null || value === undefined) return "—";
  return Number(value).toPrecision(4).replace(/\.?0+$/, "");
}

function resultsTable(results) {
  const items = results && Array.isArray(results.items) ? results.items : [];
  if (!items.length) return emptyNote("No evaluation results recorded for this version (lorry eval add).");
  return table(
    `Results of version ${results.version}`,
    ["Task", "Metric", "Filter", "Value", "± stderr", "n-shot", "Dataset", "Source", "Added by"],
    items.map((item) => [
      h("code", {}, item.task),
      item.metric,
      item.filter,
      number(item.value),
      number(item.stderr),
      item.n_shot === null ? "—" : String(item.n_shot),
      [item.dataset, item.split].filter(Boolean).join(" · ") || "—",
      item.source,
      item.created_by,
    ]),
    { class: "eval-results" },
  );
}

function scale(domain, range) {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const span = d1 - d0 || 1;
  return (value) => r0 + ((value - d0) / span) * (r1 - r0);
}

function chart(series, versions, selected) {
  const numbers = versions.map((v) => v.version);
  const values = series.points.map((p) => p.value);
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (low === high) {
    low -= Math.abs(low) * 0.1 || 1;
    high += Math.abs(high) * 0.1 || 1;
  }
  const x = scale([Math.min(...numbers), Math.max(...numbers)], [PAD.left, W - PAD.right]);
  const y = scale([low, high], [H - PAD.bottom, PAD.top]);
  const marks = [];
  for (const v of versions) {
    if (!v.aliases.length) continue;
    const at = x(v.version);
    marks.push(
      svg("line", { x1: at, x2: at, y1: PAD.top, y2: H - PAD.bottom, class: "alias-mark" }),
      svg(
        "text",
        { x: at > W / 2 ? at - 3 : at + 3, y: PAD.top + 10, class: "alias-label", "text-anchor": at > W / 2 ? "end" : "start" },
        v.aliases.join(", "),
      ),
    );
  }
  const line = series.points.map((p, i) => `${i ? "L" : "M"}${x(p.version).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ");
  const title = metricName(series);
  return h(
    "figure",
    { class: "eval-chart" },
    svg(
      "svg",
      { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": `${title} across versions` },
      svg("title", {}, `${title} across versions`),
      svg("line", { x1: PAD.left, x2: W - PAD.right, y1: H - PAD.bottom, y2: H - PAD.bottom, class: "axis" }),
      svg("line", { x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: H - PAD.bottom, class: "axis" }),
      svg("text", { x: PAD.left - 6, y: y(high) + 4, class: "tick", "text-anchor": "end" }, number(high)),
      svg("text", { x: PAD.left - 6, y: y(low) + 4, class: "tick", "text-anchor": "end" }, number(low)),
      numbers.map((n) => svg("text", { x: x(n), y: H - PAD.bottom + 16, class: "tick", "text-anchor": "middle" }, `v${n}`)),
      marks,
      svg("path", { d: line, class: "series" }),
      series.points.map((p) =>
        svg(
          "circle",
          { cx: x(p.version), cy: y(p.value), r: p.version === selected ? 5 : 3.5, class: p.version === selected ? "point selected" : "point", "data-version": p.version, "data-value": p.value },
          svg("title", {}, `v${p.version}: ${number(p.value)}${p.stderr === null ? "" : ` ± ${number(p.stderr)}`}`),
        ),
      ),
    ),
    h("figcaption", {}, title),
  );
}

/** The evaluation section of a version's page. */
export function evalSection(results, history, selected) {
  const section = h("section", { "aria-labelledby": "evals-heading" }, h("h3", { id: "evals-heading" }, "Evaluation results"));
  add(section, resultsTable(results));
  const series = history && Array.isArray(history.series) ? history.series : [];
  if (series.length) {
    add(
      section,
      h("h4", {}, "Across versions"),
      h("div", { class: "eval-charts" }, series.map((s) => chart(s, history.versions, selected))),
    );
  }
  return section;
}
