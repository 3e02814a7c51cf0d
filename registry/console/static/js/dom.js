// Building the page from data: every value enters the DOM as text, never as HTML.
// The one exception is a model card, which the server renders to safe HTML (raw HTML off).

const SVG_NS = "http://www.w3.org/2000/svg";

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function applyProps(element, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      element.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else if (key === "value" && "value" in element) {
      element.value = value;
    } else if (key === "checked" || key === "selected" || key === "open") {
      element[key] = Boolean(value);
    } else {
      element.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

/** Append children (nodes, text, nested arrays; null/undefined/false are skipped). */
export function add(parent, ...children) {
  append(parent, children);
  return parent;
}

/** An HTML element: h("a", {href: "#/jobs"}, "Jobs"). */
export function h(tag, props, ...children) {
  const element = document.createElement(tag);
  applyProps(element, props);
  append(element, children);
  return element;
}

/** An SVG element, same arguments as h(). */
export function svg(tag, props, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  applyProps(element, props);
  append(element, children);
  return element;
}

let uniqueCounter = 0;

/** A fresh element id with a readable prefix. */
export function uid(prefix) {
  uniqueCounter += 1;
  return `${prefix}-${uniqueCounter}`;
}

/** A labelled form control: the label's `for` names the control's id. */
export function field(labelText, control, hint) {
  const hintId = hint ? `${control.id}-hint` : null;
  if (hintId) control.setAttribute("aria-describedby", hintId);
  return h(
    "div",
    { class: "field" },
    h("label", { for: control.id }, labelText),
    control,
    hint ? h("span", { class: "hint", id: hintId }, hint) : null,
  );
}

/** A <select> with [value, text] options. */
export function select(props, options, current) {
  return h(
    "select",
    props,
    options.map(([value, text]) => h("option", { value, selected: String(value) === String(current ?? "") }, text)),
  );
}

/** An API error as the user should see it: the code and the server's message. */
export function errorBox(error, context) {
  const code = error && error.code ? error.code : "error";
  const message = error && error.message ? error.message : String(error);
  return h(
    "div",
    { class: "error", role: "alert" },
    h("p", {}, h("strong", {}, context ? `${context}: ` : "Error: "), message),
    h("p", { class: "error-code" }, `code ${code}${error && error.status ? `, HTTP ${error.status}` : ""}`),
  );
}

export function emptyNote(text) {
  return h("p", { class: "empty" }, text);
}

/** A table with a caption and column headers; rows are arrays of cells (nodes or text). */
export function table(caption, headers, rows, props) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      props || {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" }, text)))),
      h(
        "tbody",
        {},
        rows.map((row) => (row instanceof Node ? row : h("tr", {}, row.map((cell) => h("td", {}, cell))))),
      ),
    ),
  );
}

/** Breadcrumbs: [[text, href], ..., [text]]. */
export function breadcrumbs(items) {
  return h(
    "nav",
    { class: "breadcrumbs", "aria-label": "Breadcrumb" },
    h(
      "ol",
      {},
      items.map(([text, href], index) =>
        h(
          "li",
          {},
          href && index < items.length - 1 ? h("a", { href }, text) : h("span", { "aria-current": "page" }, text),
        ),
      ),
    ),
  );
}

/** A button that copies `text`, announcing the result in a live region next to it. */
export function copyButton(text, what) {
  const status = h("span", { class: "copy-status", role: "status" });
  const button = h(
    "button",
    {
      type: "button",
      class: "copy",
      "aria-label": `Copy ${what}`,
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(text);
          status.textContent = "Copied";
        } catch {
          status.textContent = "Copying is blocked here: select the text and copy it";
        }
        setTimeout(() => {
          status.textContent = "";
        }, 3000);
      },
    },
    "Copy",
  );
  return h("span", { class: "copy-wrap" }, button, status);
}

/** A titled code snippet with a copy button. */
export function snippet(title, code, note) {
  return h(
    "figure",
    { class: "snippet" },
    h("figcaption", {}, h("span", {}, title), copyButton(code, title)),
    h("pre", { tabindex: "0" }, h("code", {}, code)),
    note ? h("p", { class: "hint" }, note) : null,
  );
}

/** A state shown with a symbol and a word, never by colour alone. */
const STATE_SYMBOLS = {
  queued: "…",
  running: "▶",
  succeeded: "✓",
  failed: "✗",
  cancelled: "■",
};

export function stateBadge(state) {
  return h(
    "span",
    { class: ["badge", `state-${state}`] },
    h("span", { "aria-hidden": "true" }, STATE_SYMBOLS[state] || "•"),
    ` ${state}`,
  );
}
