// The public HTTP API (/api/v1), and nothing else: fetch with the optional bearer key (uploads: upload.js).

import { connection } from "./connection.js";
import { offlineError, problemFrom } from "./errors.js";

const KEY_STORAGE = "mediajobs.apiKey";
const JSON_TYPES = "application/json, application/problem+json";

/** The API key pasted by the user, kept in localStorage; empty when the server needs none. */
export const auth = new (class extends EventTarget {
  get key() {
    try {
      return localStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return "";
    }
  }

  set(key) {
    localStorage.setItem(KEY_STORAGE, key.trim());
    this.dispatchEvent(new Event("change"));
  }

  clear() {
    localStorage.removeItem(KEY_STORAGE);
    this.dispatchEvent(new Event("change"));
  }

  headers() {
    return this.key ? { Authorization: `Bearer ${this.key}` } : {};
  }

  /** The server refused us (401): the app shows the key field. */
  refused(problem) {
    this.dispatchEvent(new CustomEvent("unauthorized", { detail: problem }));
  }
})();

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/** A key for Idempotency-Key: one per submitted form, so a retried request never creates twice. */
export function newIdempotencyKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}

/** A form's request that failed to reach the server is retried with the same Idempotency-Key. */
export class Submission {
  constructor() {
    this.body = null;
    this.key = null;
  }

  keyFor(body) {
    const text = JSON.stringify(body);
    if (text !== this.body) {
      this.body = text;
      this.key = newIdempotencyKey();
    }
    return this.key;
  }

  done() {
    this.body = null;
  }
}

export async function request(method, path, { json, body, query, headers = {}, signal } = {}) {
  const init = { method, signal, cache: "no-store", headers: { Accept: JSON_TYPES, ...auth.headers(), ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;  // a File or Blob, sent as it is (its type in Content-Type unless headers say otherwise)
  }
  let response;
  try {
    response = await fetch(withQuery(path, query), init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    connection.failed();
    throw offlineError(err);
  }
  connection.succeeded();
  if (!response.ok) {
    const problem = await problemFrom(response);
    if (response.status === 401) auth.refused(problem);
    throw problem;
  }
  if (response.status === 204) return null;
  return response.json();
}

const creating = (key) => (key ? { "Idempotency-Key": key } : {});

/** The largest upload the server takes, in bytes (the tus server's Tus-Max-Size); null when unknown. */
async function uploadLimit() {
  try {
    const response = await fetch("/api/v1/uploads", { method: "OPTIONS", headers: auth.headers(), cache: "no-store" });
    const size = Number(response.headers.get("Tus-Max-Size"));
    return response.ok && size > 0 ? size : null;
  } catch {
    return null;
  }
}

export const api = {
  uploadLimit,
  listJobs: (query, signal) => request("GET", "/api/v1/jobs", { query, signal }),
  getJob: (id, signal) => request("GET", `/api/v1/jobs/${encodeURIComponent(id)}`, { signal }),
  submitJob: (body, key) => request("POST", "/api/v1/jobs", { json: body, headers: creating(key) }),
  cancelJob: (id) => request("DELETE", `/api/v1/jobs/${encodeURIComponent(id)}`),
  retryJob: (id) => request("POST", `/api/v1/jobs/${encodeURIComponent(id)}/retry`),
  jobEventsUrl: (id) => `/api/v1/jobs/${encodeURIComponent(id)}/events`,

  listMedia: (query, signal) => request("GET", "/api/v1/media", { query, signal }),
  getMedia: (id, signal) => request("GET", `/api/v1/media/${encodeURIComponent(id)}`, { signal }),
  importMedia: (body, key) => request("POST", "/api/v1/media/imports", { json: body, headers: creating(key) }),
  deleteMedia: (id) => request("DELETE", `/api/v1/media/${encodeURIComponent(id)}`),
  renameMedia: (id, title) => request("PATCH", `/api/v1/media/${encodeURIComponent(id)}`, { json: { title } }),
  listCaptions: (id) => request("GET", `/api/v1/media/${encodeURIComponent(id)}/captions`),
  addCaptions: (id, file, { language, label }, key) =>
    request("POST", `/api/v1/media/${encodeURIComponent(id)}/captions`, {
      body: file, query: { language, label }, headers: { "Content-Type": "text/plain", ...creating(key) },
    }),
  deleteCaption: (id, captionId) =>
    request("DELETE", `/api/v1/media/${encodeURIComponent(id)}/captions/${encodeURIComponent(captionId)}`),
  setPoster: (id, time) => request("PUT", `/api/v1/media/${encodeURIComponent(id)}/poster`, { json: { time } }),
  operate: (id, operation, body, key) =>
    request("POST", `/api/v1/media/${encodeURIComponent(id)}/${operation}`, { json: body ?? {}, headers: creating(key) }),
};
