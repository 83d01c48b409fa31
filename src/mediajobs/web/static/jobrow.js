// One job as a live list row (dashboard, asset page), and the Cancel / Retry actions every job view shares.

import { api } from "./api.js";
import { assetTitle } from "./assets.js";
import { messageOf } from "./errors.js";
import { follow, refresh } from "./live.js";
import {
  TERMINAL, announce, formatAgo, formatPercent, formatSeconds, h, progressBar, setProgress, shortId, stateBadge,
  updateBadge,
} from "./ui.js";

export const canCancel = (job) => !TERMINAL.has(job.state);
// Failures that running the job again cannot mend: the input is the problem (a file that is not media or
// over a limit, a refused address, bad parameters, something deleted). The API still takes a retry; the page
// does not offer one. Everything else (worker lost, timeouts, unreachable sources or storage, internal
// errors, and codes of your own kinds) may pass, and is offered.
export const PERMANENT_CODES = new Set([
  "unsupported_media", "too_large", "invalid_params", "invalid_url", "invalid_range", "invalid_fan_out",
  "forbidden_address", "not_found", "too_many_children", "no_video", "no_audio", "conflict", "resource_limit",
  "superseded",
]);
export const canRetry = (job) => job.state === "cancelled"
  || (job.state === "failed" && !PERMANENT_CODES.has(job.error?.code));

/** An error as people read it: the message first, then its code. */
export function errorText(error) {
  if (!error) return "";
  return error.message ? `${error.message} (${error.code})` : error.code;
}

export function etaText(job) {
  if (TERMINAL.has(job.state)) return "";
  if (job.cancel_requested) return "stopping…";
  if (job.eta_seconds === null || job.eta_seconds === undefined) return job.state === "running" ? "ETA unknown" : "";
  return `about ${formatSeconds(job.eta_seconds)} left`;
}

const isNewer = (job, than) => !than || new Date(job.updated_at) >= new Date(than.updated_at)
  || job.attempt > than.attempt;

/** Run Cancel or Retry; the answer updates every view of the job at once. Returns the job or throws. */
export async function jobAction(action, job) {
  const answer = action === "cancel" ? await api.cancelJob(job.id) : await api.retryJob(job.id);
  refresh(answer);
  const verb = action === "cancel"
    ? (answer.state === "cancelled" ? "cancelled" : "asked to cancel")
    : "queued for another attempt";
  announce(`Job ${answer.kind} ${shortId(answer.id)} ${verb}.`);
  return answer;
}

/** Cancel / Retry buttons and their error slot, kept in step with the job by update(). */
export class JobActions {
  constructor(onChange) {
    this.job = null;
    this.onChange = onChange;
    this.cancel = h("button", { type: "button", class: "btn btn-danger", onclick: () => this.run("cancel") }, "Cancel");
    this.retry = h("button", { type: "button", class: "btn", onclick: () => this.run("retry") }, "Retry");
    this.error = h("p", { class: "action-error", role: "alert", hidden: true });
    this.el = h("div", { class: "job-actions" }, this.cancel, this.retry, this.error);
  }

  update(job) {
    this.job = job;
    const label = `${job.kind} ${shortId(job.id)}`;
    this.cancel.hidden = !canCancel(job);
    this.cancel.disabled = Boolean(job.cancel_requested);
    this.cancel.textContent = job.cancel_requested ? "Cancelling…" : "Cancel";
    this.cancel.setAttribute("aria-label", `${this.cancel.textContent} job ${label}`);
    this.retry.hidden = !canRetry(job);
    this.retry.setAttribute("aria-label", `Retry job ${label}`);
  }

  async run(action) {
    const button = action === "cancel" ? this.cancel : this.retry;
    button.disabled = true;
    this.error.hidden = true;
    try {
      this.onChange(await jobAction(action, this.job));
    } catch (err) {
      this.error.textContent = messageOf(err);
      this.error.hidden = false;
    } finally {
      if (this.job) this.update(this.job);
    }
  }
}

/** A live row: <li data-job-id> with state, progress bar, percent, stage, ETA, errors and actions. */
export class JobRow {
  constructor(job, { mediaId = null, onAction = null } = {}) {
    this.mediaId = mediaId;
    this.job = null;
    this.badge = stateBadge(job.state);
    this.bar = progressBar(`Progress of ${job.kind} ${shortId(job.id)}`);
    this.percent = h("span", { class: "job-percent" });
    this.stage = h("span", { class: "job-stage" });
    this.eta = h("span", { class: "job-eta" });
    this.meta = h("p", { class: "job-meta" });
    this.problem = h("p", { class: "job-error", hidden: true });
    this.actions = new JobActions((answer) => {
      this.update(answer, { force: true });
      onAction?.(answer);
    });
    const title = h("a", { class: "job-kind", href: `#/jobs/${job.id}` }, job.kind,
      h("span", { class: "visually-hidden" }, ` job ${shortId(job.id)}`));
    // The asset the job works on, by its title (none on that asset's own page).
    this.asset = h("a", { class: "job-asset", hidden: true });
    this.el = h("li", { class: "job", dataset: { jobId: job.id } },
      h("div", { class: "job-head" }, title, this.asset,
        h("code", { class: "job-id", "aria-hidden": "true" }, shortId(job.id)), this.badge),
      h("div", { class: "job-progress" }, this.bar, this.percent),
      h("p", { class: "job-status" }, this.stage, this.eta),
      this.meta, this.problem, this.actions.el);
    this.update(job);
  }

  /** Show `job`, unless it is older than what the row shows (a list page can lag behind the event stream). */
  update(job, { force = false } = {}) {
    if (!force && !isNewer(job, this.job)) return;
    const previous = this.job;
    this.job = job;
    this.el.dataset.state = job.state;
    updateBadge(this.badge, job.state);
    const percent = formatPercent(job.progress);
    setProgress(this.bar, job.progress, `${percent}${job.stage ? `, ${job.stage}` : ""}`);
    this.percent.textContent = percent;
    this.stage.textContent = job.stage || (job.state === "queued" ? "Waiting for a worker" : "");
    this.eta.textContent = etaText(job);
    const parts = [`created ${formatAgo(job.created_at)}`, `attempt ${job.attempt} of ${job.max_attempts}`];
    this.meta.replaceChildren(...parts.flatMap((part, i) => (i ? [" · ", part] : [part])));
    this.showAsset(job);
    this.problem.hidden = !job.error;
    this.problem.textContent = errorText(job.error);
    this.actions.update(job);
    if (previous && previous.state !== job.state) {
      announce(`Job ${job.kind} ${shortId(job.id)} is ${job.state}.`);
    }
  }

  showAsset(job) {
    const shown = Boolean(job.media_id) && job.media_id !== this.mediaId;
    this.asset.hidden = !shown;
    if (!shown) return;
    this.asset.href = `#/media/${job.media_id}`;
    const show = (title) => {
      this.asset.textContent = title;
    };
    show(assetTitle(job.media_id, show) ?? `asset ${shortId(job.media_id)}`);
  }
}

/** A row for a job this page just started, followed until it is terminal or the row leaves the page. */
export function trackedJob(job, options = {}) {
  let stop = null;
  const dispose = () => {
    stop?.();
    stop = null;
  };
  const start = (current) => {
    if (stop || TERMINAL.has(current.state)) return;
    stop = follow(current.id, (update) => {
      if (!row.el.isConnected) {
        dispose();
        return;
      }
      if (update) row.update(update);
      if (!update || TERMINAL.has(update.state)) dispose();
      options.onUpdate?.(update);
    });
  };
  const row = new JobRow(job, { ...options, onAction: start });
  start(job);
  return { el: row.el, row, dispose };
}
