// The lineage tree of a version drawn as a layered graph (SVG): inputs on the left, the
// composed version on the right, each edge labelled with the parent's weight.
import { svg } from "./dom.js";
import { links } from "./format.js";

const NODE_W = 230;
const NODE_H = 62;
const COLUMN_GAP = 120;
const ROW_GAP = 26;
const MARGIN = 16;
const MAX_LABEL = 30;

/** Nodes (one per repository@digest, shared ancestors once) and edges parent → child. */
export function lineageGraph(root) {
  const nodes = new Map();
  const edges = [];
  const visit = (node) => {
    const key = `${node.repository}@${node.digest}`;
    if (!nodes.has(key)) {
      nodes.set(key, {
        key,
        repository: node.repository,
        version: node.version,
        digest: node.digest,
        method: node.parents && node.parents.length ? node.method : null,
        depth: 0,
      });
      for (const parent of node.parents || []) {
        const source = parent.lineage || {
          repository: parent.repository,
          version: parent.version,
          digest: parent.digest,
          method: null,
          parents: [],
        };
        edges.push({ from: visit(source), to: key, weight: parent.weight, role: parent.role });
      }
    }
    return key;
  };
  const rootKey = visit(root);
  // A node's column is its longest distance from the root, so every edge points right.
  let changed = true;
  while (changed) {
    changed = false;
    for (const edge of edges) {
      const wanted = nodes.get(edge.to).depth + 1;
      if (nodes.get(edge.from).depth < wanted) {
        nodes.get(edge.from).depth = wanted;
        changed = true;
      }
    }
  }
  return { nodes, edges, rootKey };
}

function layout(graph) {
  const layers = [];
  for (const node of graph.nodes.values()) {
    (layers[node.depth] ||= []).push(node);
  }
  const position = new Map();
  layers.forEach((layer, depth) => {
    if (depth > 0) {
      // Order a layer by where its children sit: fewer crossings.
      const score = (node) => {
        const rows = graph.edges.filter((edge) => edge.from === node.key).map((edge) => position.get(edge.to).row);
        return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : 0;
      };
      layer.sort((a, b) => score(a) - score(b));
    }
    layer.forEach((node, row) => position.set(node.key, { row }));
  });
  const tallest = Math.max(...layers.map((layer) => layer.length));
  const columns = layers.length;
  layers.forEach((layer, depth) => {
    const offset = ((tallest - layer.length) * (NODE_H + ROW_GAP)) / 2;
    layer.forEach((node, row) => {
      position.set(node.key, {
        row,
        x: MARGIN + (columns - 1 - depth) * (NODE_W + COLUMN_GAP),
        y: MARGIN + offset + row * (NODE_H + ROW_GAP),
      });
    });
  });
  return {
    position,
    width: MARGIN * 2 + columns * NODE_W + (columns - 1) * COLUMN_GAP,
    height: MARGIN * 2 + tallest * NODE_H + (tallest - 1) * ROW_GAP,
  };
}

function shorten(text) {
  return text.length > MAX_LABEL ? `${text.slice(0, MAX_LABEL - 1)}…` : text;
}

function nodeElement(node, at, isRoot) {
  const hex = node.digest.replace(/^sha256:/, "");
  const label = `${node.repository} v${node.version}`;
  const lines = [
    svg("text", { x: at.x + 12, y: at.y + 21, class: "node-title" }, shorten(node.repository)),
    svg("text", { x: at.x + 12, y: at.y + 38, class: "node-sub" }, `v${node.version} · sha256:${hex.slice(0, 10)}`),
    svg(
      "text",
      { x: at.x + 12, y: at.y + 54, class: "node-method" },
      node.method ? `${isRoot ? "this version: " : ""}${node.method} merge` : isRoot ? "this version: pushed" : "pushed adapter",
    ),
  ];
  return svg(
    "a",
    {
      href: links.repo(node.repository, node.version),
      class: ["node", isRoot ? "root" : null, node.method ? "composed" : "leaf"],
      "aria-label": `${label}${node.method ? `, ${node.method} merge` : ", pushed"}${isRoot ? " (this version)" : ""}`,
    },
    svg("title", {}, `${label}\n${node.digest}`),
    svg("rect", { x: at.x, y: at.y, width: NODE_W, height: NODE_H, rx: 8, ry: 8 }),
    lines,
  );
}

function edgeElement(edge, from, to, slot) {
  const x1 = from.x + NODE_W;
  const y1 = from.y + NODE_H / 2;
  const x2 = to.x;
  const y2 = to.y + NODE_H / 2;
  const bend = COLUMN_GAP / 2;
  const text = [edge.weight !== null && edge.weight !== undefined ? `× ${edge.weight}` : null, edge.role === "base" ? "base" : null]
    .filter(Boolean)
    .join(" · ");
  // Next to the arrow's tail; an input feeding several versions stacks its labels (slot).
  const labelX = x1 + 10;
  const labelY = y1 - 7 - slot * 15;
  return svg(
    "g",
    { class: ["edge", edge.role === "base" ? "base" : null, Number(edge.weight) < 0 ? "negative" : null] },
    svg("path", {
      d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2 - 4} ${y2}`,
      "marker-end": "url(#arrow)",
    }),
    text ? svg("text", { x: labelX, y: labelY, class: "edge-label" }, text) : null,
  );
}

/** The SVG of a lineage tree (the API's LineageNode). */
export function lineageSvg(root) {
  const graph = lineageGraph(root);
  const { position, width, height } = layout(graph);
  const slots = new Map();
  return svg(
    "svg",
    {
      class: "lineage-graph",
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: "group",
      "aria-label": `Lineage graph of ${root.repository} v${root.version}`,
    },
    svg(
      "defs",
      {},
      svg(
        "marker",
        { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse" },
        svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow-head" }),
      ),
    ),
    graph.edges.map((edge) => {
      const slot = slots.get(edge.from) || 0;
      slots.set(edge.from, slot + 1);
      return edgeElement(edge, position.get(edge.from), position.get(edge.to), slot);
    }),
    [...graph.nodes.values()].map((node) => nodeElement(node, position.get(node.key), node.key === graph.rootKey)),
  );
}
