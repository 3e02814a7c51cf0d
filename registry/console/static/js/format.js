// Formatting of times, sizes, digests, and the console's own links.
import { h } from "./dom.js";

/** A Date from the API's ISO 8601 text; a time without an offset is UTC (the API's rule). */
export function parseTime(text) {
  if (!text) return null;
  let value = String(text);
  if (!/(Z|[+-]\d\d:?\d\d)$/i.test(value)) value += "Z";
  // More than millisecond precision confuses some Date parsers: keep milliseconds.
  value = value.replace(/(\.\d{3})\d+/, "$1");
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

const pad = (number, width = 2) => String(number).padStart(width, "0");

/** The browser's UTC offset at `date`, e.g. "UTC+02:00". */
export function utcOffset(date = new Date()) {
  const minutes = -date.getTimezoneOffset();
  const sign = minutes >= 0 ? "+" : "-";
  return `UTC${sign}${pad(Math.floor(Math.abs(minutes) / 60))}:${pad(Math.abs(minutes) % 60)}`;
}

/** "2024-05-07 14:30:12" in the browser's time zone (no zone: see `localStamp`). */
export function localText(date) {
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** The browser's zone at `date` as people write it: "UTC", "CET", "EST", or "GMT+5:30" where
 * the zone has no abbreviation in the browser's language. */
export function zoneName(date = new Date()) {
  const part = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" })
    .formatToParts(date)
    .find((item) => item.type === "timeZoneName");
  return part ? part.value : utcOffset(date);
}

/** The console's one rule for a time shown: local time to the second with its zone,
 * "2024-05-07 14:30:12 CEST". */
export function localStamp(date) {
  return `${localText(date)} ${zoneName(date)}`;
}

/** The value a <input type="datetime-local" step="0.001"> takes for `date`. */
export function localInputValue(date) {
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.` +
    `${pad(date.getMilliseconds(), 3)}`
  );
}

/** ISO 8601 (UTC) of a datetime-local value, which is the browser's local time. */
export function isoFromLocalInput(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

/** A <time> element: local time with its zone shown, the exact instant (ISO 8601, UTC) in
 * `datetime` and the tooltip. */
export function timeElement(text) {
  const date = parseTime(text);
  if (!date) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: date.toISOString(), title: date.toISOString() }, localStamp(date));
}

export function formatBytes(size) {
  if (size === null || size === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(size);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}

/** "sha256:3f9c0a1b2c4d" with the full digest in a tooltip. */
export function digestElement(digest) {
  const hex = String(digest || "").replace(/^sha256:/, "");
  return h("code", { class: "digest", title: `sha256:${hex}` }, `sha256:${hex.slice(0, 12)}`);
}

export function formatWeight(weight) {
  if (weight === null || weight === undefined) return "";
  return `× ${Number(weight)}`;
}

const enc = encodeURIComponent;

/** Links inside the console (hash routes). */
export const links = {
  repos: (params) => withQuery("#/repos", params),
  repo: (repository, version) => {
    const [namespace, name] = splitRepository(repository);
    return withQuery(`#/repos/${enc(namespace)}/${enc(name)}`, { version });
  },
  alias: (repository, alias, at) => {
    const [namespace, name] = splitRepository(repository);
    return withQuery(`#/repos/${enc(namespace)}/${enc(name)}/aliases/${enc(alias)}`, { at });
  },
  lineage: (repository, version) => {
    const [namespace, name] = splitRepository(repository);
    return `#/repos/${enc(namespace)}/${enc(name)}/versions/${enc(version)}/lineage`;
  },
  jobs: (params) => withQuery("#/jobs", params),
  audit: (params) => withQuery("#/audit", params),
};

export function splitRepository(repository) {
  const index = repository.indexOf("/");
  return [repository.slice(0, index), repository.slice(index + 1)];
}

export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** "acme/sql-gen v3", linked to the repository page at that version. */
export function versionLink(repository, version) {
  return h("a", { href: links.repo(repository, version) }, `${repository} v${version}`);
}
