// The REST API under /api/v1, read with the visitor's token. The console only ever reads:
// there is no function here that sends anything but GET.

const API = "/api/v1";
const TOKEN_KEY = "lorry.console.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function authHeaders() {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** "/repos/acme/sql-gen" from parts, each percent-encoded (slashes inside a part included). */
export function path(...parts) {
  return parts.map((part) => `/${encodeURIComponent(part)}`).join("");
}

/** A file's path with its own slashes kept: "/files/dir/a%20b.txt". */
export function filePath(file) {
  return file
    .split("/")
    .map((segment) => encodeURIComponent(segment))
    .join("/");
}

/** The URL of `route` under /api/v1 with the non-empty `params` as its query. */
export function apiUrl(route, params) {
  const url = new URL(API + route, window.location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
  }
  return url.pathname + url.search;
}

async function errorOf(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    // not JSON: fall back on the status line
  }
  return new ApiError(
    response.status,
    body.code || `http_${response.status}`,
    body.message || body.error || `HTTP ${response.status} ${response.statusText}`.trim(),
  );
}

async function request(route, params) {
  let response;
  try {
    response = await fetch(apiUrl(route, params), {
      headers: { Accept: "application/json", ...authHeaders() },
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(
      0,
      "network_error",
      `the registry did not answer (${error.message}); check that \`lorry serve\` is running`,
    );
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

/** GET a JSON document; throws ApiError with the API's {code, message}. */
export async function get(route, params) {
  return (await request(route, params)).json();
}

/** GET, or null when the API answers 404 (for optional parts such as exports). */
export async function getOptional(route, params) {
  try {
    return await get(route, params);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

/** Download a file through fetch, so that the token travels as a header, then save it. */
export async function download(route, filename) {
  const response = await request(route);
  const url = URL.createObjectURL(await response.blob());
  const anchor = document.createElement("a");
  anchor.href = url;
  anchor.download = filename;
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
