// A live, paginated list of jobs: the page is re-read every 1.5 s (new jobs, state changes), and the jobs that
// are still running are followed through live.js so their bars move between reads. Rows are keyed by job id,
// so however often the page is re-read, or the server comes and goes, no job is shown twice.

import { api } from "./api.js";
import { connection } from "./connection.js";
import { messageOf } from "./errors.js";
import { JobRow } from "./jobrow.js";
import { follow, resume } from "./live.js";
import { TERMINAL, h, reconcile } from "./ui.js";

const REFRESH_MS = 1500;

export class JobList {
  /**
   * query(): the filters ({state, kind, media_id}); empty(filtered): the node shown when the page is empty;
   * mediaId: the asset page the list is on (its rows do not link back to it).
   */
  constructor({ query, empty, mediaId = null, pageSize = 20, label = "Jobs" }) {
    this.query = query;
    this.empty = empty;
    this.mediaId = mediaId;
    this.pageSize = pageSize;
    this.rows = new Map();
    this.followers = new Map();
    this.cursors = [null];
    this.loading = null;
    this.timer = null;
    this.disposed = false;

    this.list = h("ul", { class: "job-list", "aria-label": label });
    this.status = h("p", { class: "list-status", role: "status" }, "Loading jobs…");
    this.problem = h("p", { class: "list-error", role: "alert", hidden: true });
    this.emptySlot = h("div", { class: "empty-slot" });
    this.prev = h("button", { type: "button", class: "btn", onclick: () => this.page(-1) }, "← Newer");
    this.next = h("button", { type: "button", class: "btn", onclick: () => this.page(1) }, "Older →");
    this.pageLabel = h("span", { class: "page-label" });
    this.pager = h("nav", { class: "pager", "aria-label": `${label} pages` }, this.prev, this.pageLabel, this.next);
    this.el = h("div", { class: "job-list-wrap" }, this.status, this.problem, this.emptySlot, this.list, this.pager);

    this.onReconnect = () => this.load();
    connection.addEventListener("reconnected", this.onReconnect);
  }

  start() {
    this.load();
    this.timer = setInterval(() => this.load(), REFRESH_MS);
    return this;
  }

  /** The filters changed: back to the first page. */
  reset() {
    this.cursors = [null];
    this.load({ force: true });
  }

  page(step) {
    if (step > 0 && this.nextCursor) this.cursors.push(this.nextCursor);
    if (step < 0 && this.cursors.length > 1) this.cursors.pop();
    this.load({ force: true }).then(() => this.list.querySelector("a")?.focus());
  }

  /** Show a job at once (just submitted) without waiting for the next read. */
  prepend(job) {
    if (this.cursors.length !== 1 || this.rows.has(job.id)) return;
    const row = new JobRow(job, { mediaId: this.mediaId });
    this.rows.set(job.id, row);
    this.list.prepend(row.el);
    this.emptySlot.replaceChildren();
    this.watch(job);
  }

  async load({ force = false } = {}) {
    if (this.disposed) return;
    if (this.loading && !force) return;
    if (this.loading) this.loading.abort();
    const controller = new AbortController();
    this.loading = controller;
    const cursor = this.cursors[this.cursors.length - 1];
    try {
      const page = await api.listJobs({ ...this.query(), limit: this.pageSize, cursor }, controller.signal);
      if (controller.signal.aborted || this.disposed) return;
      this.show(page);
      this.problem.hidden = true;
    } catch (err) {
      if (err.name === "AbortError" || this.disposed) return;
      if (!err.offline) {
        this.problem.textContent = `Could not load the jobs: ${messageOf(err)}`;
        this.problem.hidden = false;
      }
      this.status.textContent = "";
    } finally {
      if (this.loading === controller) this.loading = null;
    }
  }

  show(page) {
    const nodes = page.items.map((job) => {
      let row = this.rows.get(job.id);
      if (row) row.update(job);
      else {
        row = new JobRow(job, { mediaId: this.mediaId });
        this.rows.set(job.id, row);
      }
      this.watch(job);
      return row.el;
    });
    const visible = new Set(page.items.map((job) => job.id));
    for (const id of [...this.rows.keys()]) {
      if (!visible.has(id)) {
        this.rows.delete(id);
        this.followers.get(id)?.();
        this.followers.delete(id);
      }
    }
    reconcile(this.list, nodes);
    this.nextCursor = page.next_cursor;
    const first = this.cursors.length === 1;
    this.prev.disabled = first;
    this.next.disabled = !page.next_cursor;
    this.pager.hidden = first && !page.next_cursor;
    this.pageLabel.textContent = `Page ${this.cursors.length}`;
    this.status.textContent = "";
    const filtered = Object.values(this.query()).some((v) => v);
    if (page.items.length === 0 && first) {
      if (!this.emptySlot.firstChild || this.emptySlot.dataset.filtered !== String(filtered)) {
        this.emptySlot.replaceChildren(this.empty(filtered));
        this.emptySlot.dataset.filtered = String(filtered);
      }
    } else {
      this.emptySlot.replaceChildren();
    }
  }

  watch(job) {
    if (TERMINAL.has(job.state)) return;
    if (this.followers.has(job.id)) {
      resume(job.id);
      return;
    }
    this.followers.set(job.id, follow(job.id, (update) => {
      if (update) this.rows.get(update.id)?.update(update);
    }));
  }

  dispose() {
    this.disposed = true;
    clearInterval(this.timer);
    this.loading?.abort();
    connection.removeEventListener("reconnected", this.onReconnect);
    for (const stop of this.followers.values()) stop();
    this.followers.clear();
  }
}
