// The console's shell: who is reading (token or not), the hash router, the page frame.
import * as api from "./api.js";
import { add, errorBox, field, h } from "./dom.js";
import { withQuery } from "./format.js";
import * as aliasPage from "./alias.js";
import * as auditPage from "./audit.js";
import * as jobsPage from "./jobs.js";
import * as lineagePage from "./lineage.js";
import * as reposPage from "./repos.js";
import * as repositoryPage from "./repository.js";

const SEGMENT = "([^/?#]+)";
const ROUTES = [
  { pattern: /^\/?$/, page: reposPage, nav: "repos" },
  { pattern: /^\/repos\/?$/, page: reposPage, nav: "repos" },
  { pattern: new RegExp(`^/repos/${SEGMENT}/${SEGMENT}/?$`), page: repositoryPage, nav: "repos" },
  {
    pattern: new RegExp(`^/repos/${SEGMENT}/${SEGMENT}/aliases/${SEGMENT}/?$`),
    page: aliasPage,
    nav: "repos",
  },
  {
    pattern: new RegExp(`^/repos/${SEGMENT}/${SEGMENT}/versions/${SEGMENT}/lineage/?$`),
    page: lineagePage,
    nav: "repos",
  },
  { pattern: /^\/jobs\/?$/, page: jobsPage, nav: "jobs" },
  { pattern: /^\/audit\/?$/, page: auditPage, nav: "audit" },
];

const state = {
  session: null,
  sessionError: null,
  tokenError: null,
  askForToken: false,
  generation: 0,
  lastPath: null,
  leave: [],
};

const main = () => document.getElementById("main");

// --- who is reading ---------------------------------------------------------------------

async function loadSession() {
  try {
    state.session = await api.get("/whoami");
    state.sessionError = null;
  } catch (error) {
    if (error.status === 401 && api.getToken()) {
      state.tokenError = error;
      api.forgetToken();
      return loadSession();
    }
    state.session = null;
    state.sessionError = error;
  }
  renderSession();
  renderTokenPanel();
  return state.session;
}

function describeGrant(session) {
  if (!session.scopes.length) return "no access";
  const where = session.namespaces.includes("*") ? "every namespace" : session.namespaces.join(", ");
  return `${session.scopes.join(", ")} on ${where}`;
}

function signInButton() {
  return h(
    "button",
    {
      type: "button",
      id: "sign-in",
      class: "header-button",
      "aria-haspopup": "dialog",
      "aria-controls": "token-panel",
      "aria-expanded": "false",
      onclick: () => showTokenPanel(),
    },
    "Sign in with token",
  );
}

// The header's session control: who reads, what that may read, and the way to sign in or out.
function renderSession() {
  const box = document.getElementById("session");
  const session = state.session;
  if (!session) {
    box.replaceChildren(h("span", { class: "muted" }, "Registry unreachable"));
    return;
  }
  const grant = describeGrant(session);
  if (session.mode === "open") {
    box.replaceChildren(
      h("span", { class: "who", title: `Open registry: no token exists yet; you read as ${session.principal} (${grant})` }, session.principal),
      h("span", { class: "grant" }, "open registry, no tokens"),
    );
    return;
  }
  if (api.getToken()) {
    box.replaceChildren(
      h("span", { class: "who", title: `token ${session.token_id}: ${grant}` }, `Signed in as ${session.principal}`),
      h("span", { class: "grant" }, grant),
      h("button", { type: "button", id: "sign-out", class: "header-button", onclick: forgetToken }, "Sign out"),
    );
    return;
  }
  box.replaceChildren(
    h("span", { class: "who", title: `anonymous visitors may read: ${grant}` }, "Anonymous"),
    h("span", { class: "grant" }, grant),
    signInButton(),
  );
}

/** Whether the sign-in popover opens by itself: the registry needs a token to read anything,
 * or the token just given was refused. Anonymous visitors who may read are not interrupted. */
function tokenPanelWanted() {
  const session = state.session;
  if (!session || session.mode !== "closed" || api.getToken()) return false;
  return Boolean(state.askForToken || state.tokenError || !session.anonymous_read);
}

function buildTokenPanel() {
  const panel = document.getElementById("token-panel");
  const session = state.session;
  const input = h("input", {
    id: "token-input",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    placeholder: "lorry_…",
  });
  const form = h(
    "form",
    { class: "token-form", onsubmit: (event) => submitToken(event, input.value) },
    field("Access token", input, "A Lorry token (lorry_…); a read token is enough."),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit" }, "Sign in"),
      h("button", { type: "button", class: "secondary", onclick: () => hideTokenPanel() }, "Cancel"),
    ),
  );
  panel.replaceChildren();
  add(
    panel,
    h("h2", { id: "token-heading" }, "Sign in with a token"),
    h(
      "p",
      { class: "hint" },
      session && session.anonymous_read
        ? "Without a token you read what anonymous visitors may read; a token shows what it grants."
        : "Reading needs a token on this registry.",
    ),
    state.tokenError ? errorBox(state.tokenError, "The token was refused") : null,
    form,
    h(
      "p",
      { class: "hint" },
      "The token stays in this browser tab (sessionStorage) and is sent only to this registry, " +
        "as an Authorization header. The console only reads.",
    ),
  );
}

function renderTokenPanel() {
  const panel = document.getElementById("token-panel");
  if (tokenPanelWanted()) {
    showTokenPanel();
    return;
  }
  if (panel.matches(":popover-open")) panel.hidePopover();
  panel.replaceChildren();
}

async function submitToken(event, value) {
  event.preventDefault();
  const token = value.trim();
  if (!token) return;
  api.setToken(token);
  state.tokenError = null;
  state.askForToken = false;
  await loadSession();
  if (api.getToken()) {
    state.lastPath = null;
    await route();
    main().focus();
  } else {
    document.getElementById("token-input")?.focus();
  }
}

function hideTokenPanel() {
  state.askForToken = false;
  const panel = document.getElementById("token-panel");
  if (panel.matches(":popover-open")) panel.hidePopover();
  document.getElementById("sign-in")?.focus();
}

async function forgetToken() {
  api.forgetToken();
  await loadSession();
  state.lastPath = null;
  await route();
  document.getElementById("sign-in")?.focus();
}

function showTokenPanel() {
  const panel = document.getElementById("token-panel");
  state.askForToken = true;
  buildTokenPanel();
  // Just below the header, however many lines it wrapped to.
  panel.style.top = `${Math.round(document.querySelector(".site-header").getBoundingClientRect().bottom) + 6}px`;
  if (!panel.matches(":popover-open")) panel.showPopover();
  document.getElementById("token-input")?.focus();
}

// --- routing ----------------------------------------------------------------------------

function currentLocation() {
  const raw = window.location.hash.startsWith("#/") ? window.location.hash.slice(1) : "/";
  const split = raw.indexOf("?");
  return {
    path: split < 0 ? raw : raw.slice(0, split),
    params: new URLSearchParams(split < 0 ? "" : raw.slice(split + 1)),
  };
}

function navigate(path, params) {
  const target = withQuery(`#${path}`, params);
  if (target === window.location.hash) route();
  else window.location.hash = target;
}

function notFound(path) {
  return h(
    "div",
    {},
    h("h1", {}, "No such page"),
    h("p", {}, `The console has no page at ${path}. `, h("a", { href: "#/repos" }, "See the repositories.")),
  );
}

function pageError(error) {
  const unauthorized = error && (error.status === 401 || error.status === 403);
  return h(
    "div",
    {},
    h("h1", {}, unauthorized ? "Not allowed" : "Something went wrong"),
    errorBox(error),
    unauthorized && state.session && state.session.mode === "closed"
      ? h("p", {}, h("button", { type: "button", onclick: () => showTokenPanel() }, "Sign in with token"))
      : null,
  );
}

function markNav(nav) {
  for (const link of document.querySelectorAll(".site-nav a")) {
    if (link.dataset.nav === nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  if (window.location.hash && !window.location.hash.startsWith("#/")) return;
  for (const leave of state.leave.splice(0)) leave();
  state.generation += 1;
  const generation = state.generation;
  const { path, params } = currentLocation();
  const samePath = path === state.lastPath;
  const focusedId = document.activeElement && document.activeElement.id;
  const target = main();
  target.setAttribute("aria-busy", "true");
  if (!samePath) target.replaceChildren(h("p", { class: "loading" }, "Loading…"));
  const found = ROUTES.map((entry) => ({ entry, match: path.match(entry.pattern) })).find((item) => item.match);
  const ctx = {
    session: state.session,
    params,
    navigate,
    isCurrent: () => generation === state.generation,
    onLeave: (callback) => state.leave.push(callback),
  };
  let node;
  try {
    const captures = found ? found.match.slice(1).map((part) => decodeURIComponent(part)) : [];
    node = found ? await found.entry.page.render(ctx, ...captures) : notFound(path);
  } catch (error) {
    node = pageError(error);
  }
  if (generation !== state.generation) return;
  target.replaceChildren(node);
  target.removeAttribute("aria-busy");
  target.dataset.page = window.location.hash;
  markNav(found ? found.entry.nav : null);
  const heading = target.querySelector("h1");
  document.title = heading ? `${heading.textContent} · Lorry` : "Lorry";
  if (!samePath && state.lastPath !== null && heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  } else if (samePath && focusedId) {
    const again = document.getElementById(focusedId);
    if (again) again.focus();
  }
  state.lastPath = path;
}

async function start() {
  document.querySelector(".skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    main().focus();
  });
  window.addEventListener("hashchange", route);
  const panel = document.getElementById("token-panel");
  panel.addEventListener("toggle", (event) => {
    const open = event.newState === "open";
    if (!open) {
      state.askForToken = false;
      state.tokenError = null;
    }
    document.getElementById("sign-in")?.setAttribute("aria-expanded", String(open));
  });
  await loadSession();
  await route();
}

start();
