// Live job updates: follow(jobId, listener) delivers every change of a job until it is terminal.
//
// Server-Sent Events (GET /api/v1/jobs/{id}/events) when possible. Polling GET /api/v1/jobs/{id} every second
// instead when an API key is set (EventSource cannot send an Authorization header), and for jobs beyond the
// first few streams: a browser opens at most six HTTP/1.1 connections per server, and the page's own
// requests need some of them.

import { api, auth } from "./api.js";
import { connection } from "./connection.js";
import { TERMINAL } from "./ui.js";

const MAX_STREAMS = 4;
const POLL_MS = 1000;

const subscriptions = new Map();
let streams = 0;

class Subscription {
  constructor(id) {
    this.id = id;
    this.listeners = new Set();
    this.last = null;
    this.source = null;
    this.timer = null;
    this.polling = false;
    this.done = false;
  }

  deliver(job, error = null) {
    this.last = job || this.last;
    for (const listener of [...this.listeners]) listener(job, error);
    if (job && TERMINAL.has(job.state)) this.finish();
  }

  start() {
    this.done = false;
    if (!auth.key && streams < MAX_STREAMS && typeof EventSource !== "undefined") this.stream();
    else this.poll();
  }

  stream() {
    streams += 1;
    const source = new EventSource(api.jobEventsUrl(this.id));
    this.source = source;
    source.addEventListener("open", () => connection.succeeded());
    source.addEventListener("job", (event) => {
      let job;
      try {
        job = JSON.parse(event.data);
      } catch {
        return;
      }
      this.deliver(job);
    });
    source.addEventListener("error", () => {
      if (this.source !== source) return;
      if (source.readyState === EventSource.CLOSED) {
        // Refused for good (404, 401, not an event stream): polling says why and carries on.
        this.closeStream();
        this.poll();
      } else {
        connection.failed();  // EventSource retries by itself; the banner shows meanwhile
      }
    });
  }

  closeStream() {
    if (!this.source) return;
    this.source.close();
    this.source = null;
    streams -= 1;
    rebalance();
  }

  poll() {
    this.polling = true;
    const tick = async () => {
      if (!this.polling) return;
      try {
        this.deliver(await api.getJob(this.id));
      } catch (err) {
        if (err.status === 404 || err.status === 401) {
          this.deliver(null, err);
          this.finish();
          return;
        }
      }
      if (this.polling) this.timer = setTimeout(tick, POLL_MS);
    };
    tick();
  }

  stopPolling() {
    this.polling = false;
    clearTimeout(this.timer);
    this.timer = null;
  }

  finish() {
    this.done = true;
    this.stopPolling();
    this.closeStream();
  }
}

/** Give a freed stream slot to a job that is being polled for want of one. */
function rebalance() {
  if (auth.key) return;
  for (const sub of subscriptions.values()) {
    if (streams >= MAX_STREAMS) return;
    if (sub.polling && !sub.done) {
      sub.stopPolling();
      sub.stream();
    }
  }
}

/** Call listener(job) on every change of the job until it is terminal; returns the unsubscribe function. */
export function follow(jobId, listener) {
  let sub = subscriptions.get(jobId);
  if (!sub) {
    sub = new Subscription(jobId);
    subscriptions.set(jobId, sub);
    sub.listeners.add(listener);
    sub.start();
  } else {
    sub.listeners.add(listener);
    if (sub.done) sub.start();
  }
  return () => {
    sub.listeners.delete(listener);
    if (sub.listeners.size === 0) {
      subscriptions.delete(jobId);
      sub.finish();
    }
  };
}

/** A job changed under our feet (retried, cancelled from this page): tell its listeners, follow it again. */
export function refresh(job) {
  const sub = subscriptions.get(job.id);
  if (!sub) return;
  sub.deliver(job);
  if (!TERMINAL.has(job.state) && sub.done) sub.start();
}

/** Follow a job again whose earlier updates ended (it was terminal, then retried elsewhere). */
export function resume(jobId) {
  const sub = subscriptions.get(jobId);
  if (sub && sub.done) sub.start();
}

function restartAll() {
  for (const sub of subscriptions.values()) {
    sub.finish();
    sub.start();
  }
}

auth.addEventListener("change", restartAll);
connection.addEventListener("reconnected", () => {
  for (const sub of subscriptions.values()) {
    if (sub.done) continue;
    if (sub.source && sub.source.readyState === EventSource.OPEN) continue;
    sub.finish();
    sub.start();
  }
});
