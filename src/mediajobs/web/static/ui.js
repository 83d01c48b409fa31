// Small DOM helpers and formatters shared by every view.

/** h("a", {href: "#/", class: "x", onclick: fn}, "text", child) -> element. Strings are text, never HTML. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "text") el.textContent = value;
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

let uid = 0;
export const uniqueId = (prefix) => `${prefix}-${++uid}`;

/**
 * A labelled form control with its hint and error slot: {wrapper, control}. The control gets
 * aria-describedby pointing at both, and data-field naming the API field(s) whose errors belong to it.
 */
export function field({ label, control, hint, name, apiField }) {
  const id = control.id || uniqueId(name || "field");
  control.id = id;
  if (name) control.name = name;
  if (apiField) control.dataset.field = apiField;
  const described = [];
  const hintEl = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintEl) described.push(hintEl.id);
  const errorEl = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  described.push(errorEl.id);
  control.setAttribute("aria-describedby", described.join(" "));
  const wrapper = h("div", { class: "field" }, h("label", { for: id }, label), control, hintEl, errorEl);
  return { wrapper, control };
}

/** The summary slot for a form's errors that belong to no single field. */
export const formError = () => h("p", { class: "form-error", role: "alert", hidden: true });

// --- progress --------------------------------------------------------------------------------------------

/** A progressbar element; update it with setProgress(). */
export function progressBar(label) {
  const fill = h("span", { class: "progress-fill" });
  return h("div", {
    class: "progress", role: "progressbar", "aria-label": label, "aria-valuemin": "0", "aria-valuemax": "100",
    "aria-valuenow": "0",
  }, fill);
}

export function setProgress(bar, percent, text) {
  const value = Math.max(0, Math.min(100, Number(percent) || 0));
  bar.setAttribute("aria-valuenow", String(Math.round(value * 10) / 10));
  bar.setAttribute("aria-valuetext", text || `${formatPercent(value)}`);
  bar.firstChild.style.width = `${value}%`;
}

// --- formatting ------------------------------------------------------------------------------------------

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
export const JOB_STATES = ["queued", "running", "retrying", "succeeded", "failed", "cancelled"];
export const MEDIA_STATES = ["pending", "uploading", "importing", "processing", "ready", "failed", "deleting"];

export function formatPercent(value) {
  const v = Number(value) || 0;
  return `${v >= 100 || v === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 1 : 0)} %`;
}

/** 75 -> "1 min 15 s"; 3725 -> "1 h 2 min". */
export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "";
  const s = Math.max(0, Number(seconds));
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = Math.round(s % 60);
  return h ? `${h} h ${m} min` : `${m} min${rest ? ` ${rest} s` : ""}`;
}

/** A media timestamp: 83.4 -> "1:23.4". */
export function formatClock(seconds) {
  const s = Math.max(0, Number(seconds) || 0);
  const m = Math.floor(s / 60);
  const rest = (s % 60).toFixed(1).padStart(4, "0");
  return `${m}:${rest}`;
}

/** Sizes in binary units, as the API's messages, the CLI and the README write them: 1 MiB = 1,048,576 bytes. */
export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(bytes);
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 || Number.isInteger(value) ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** "12 s ago", "3 min ago", or a date for older things. */
export function formatAgo(iso) {
  if (!iso) return "";
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  if (!Number.isFinite(seconds)) return iso;
  if (seconds < 5) return "just now";
  if (seconds < 3600) return `${formatSeconds(seconds)} ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return formatTime(iso);
}

export const shortId = (id) => (id ? String(id).slice(0, 8) : "");

export function stateBadge(state, extra = "") {
  return h("span", { class: `badge state-${state}`, dataset: { state } }, extra ? `${state} ${extra}` : state);
}

export function updateBadge(badge, state, extra = "") {
  badge.className = `badge state-${state}`;
  badge.dataset.state = state;
  badge.textContent = extra ? `${state} ${extra}` : state;
}

/** Pretty JSON for a <pre>. */
export const prettyJson = (value) => JSON.stringify(value, null, 2);

/** Tell screen readers about something that happened (state changes, results of actions). */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A fresh text node after a tick makes repeated identical messages announced again.
  setTimeout(() => {
    region.textContent = text;
  }, 30);
}

/** Reorder `parent`'s children to `nodes` moving as little as possible, so focus inside them survives. */
export function reconcile(parent, nodes) {
  const wanted = new Set(nodes);
  for (const child of [...parent.children]) if (!wanted.has(child)) child.remove();
  nodes.forEach((node, index) => {
    const at = parent.children[index];
    if (at !== node) parent.insertBefore(node, at || null);
  });
}
