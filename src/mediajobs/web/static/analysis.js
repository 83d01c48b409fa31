// Analysis: run it, then show its findings — scene cuts, black / silent / frozen stretches on the timeline and
// as lists that seek the player, and loudness.

import { Submission, api } from "./api.js";
import { messageOf } from "./errors.js";
import { trackedJob } from "./jobrow.js";
import { announce, formatClock, formatSeconds, formatTime, h } from "./ui.js";

const STRETCHES = [
  ["black", "Black", "black stretch", "black stretches"],
  ["silence", "Silence", "silent stretch", "silent stretches"],
  ["freeze", "Frozen", "frozen stretch", "frozen stretches"],
];

const isAnalysis = (job) => job?.state === "succeeded" && job.result && typeof job.result === "object"
  && Array.isArray(job.result.scenes);

const count = (n, one, many) => `${n} ${n === 1 ? one : many}`;
const number = (value, digits = 1) => (value === null || value === undefined || !Number.isFinite(Number(value))
  ? "—" : Number(value).toFixed(digits));

export class AnalysisPanel {
  constructor({ asset, player, timeline, onJob }) {
    this.asset = asset;
    this.onJob = onJob;
    this.video = player.video;
    this.timeline = timeline;
    this.submission = new Submission();
    this.run = h("button", { type: "button", class: "btn btn-primary", onclick: () => this.start() }, "Run analysis");
    this.error = h("p", { class: "action-error", role: "alert", hidden: true });
    this.jobSlot = h("div", { class: "op-job" });
    this.findings = h("div", { class: "findings", "aria-live": "polite" },
      h("p", { class: "hint" }, "No analysis yet. It finds scene cuts, black, silent and frozen stretches, and measures loudness."));
    this.el = h("section", { class: "card op", "aria-labelledby": "analysis-heading" },
      h("h2", { id: "analysis-heading" }, "Analysis"),
      h("div", { class: "form-actions" }, this.run), this.error, this.jobSlot, this.findings);
  }

  /** Show the newest earlier analysis of this asset, if any. */
  async latest() {
    try {
      const page = await api.listJobs({ media_id: this.asset.id, state: "succeeded", limit: 100 });
      const job = page.items.find(isAnalysis);
      if (job && !this.shown) this.show(job);
    } catch {
      // The asset's job list shows the same error; nothing more to say here.
    }
  }

  async start() {
    this.run.disabled = true;
    this.error.hidden = true;
    try {
      const answer = await api.operate(this.asset.id, "analyze", {}, this.submission.keyFor({}));
      this.submission.done();
      const tracked = trackedJob(answer.job, {
        mediaId: this.asset.id,
        onUpdate: (job) => {
          if (isAnalysis(job)) this.show(job);
          else if (job?.state === "succeeded") this.showRaw(job);
        },
      });
      this.jobSlot.replaceChildren(tracked.el);
      announce("Analysis started.");
      this.onJob?.(answer.job);
    } catch (err) {
      this.error.textContent = messageOf(err);
      this.error.hidden = false;
    } finally {
      this.run.disabled = false;
    }
  }

  seekButton(start, text) {
    return h("button", { type: "button", class: "link-button", onclick: () => {
      this.video.currentTime = start;
      this.video.focus();
    } }, text);
  }

  show(job) {
    this.shown = job.id;
    const r = job.result;
    const scenes = r.scenes || [];
    this.timeline.lane("scenes", "Scenes", scenes.map((s) => ({ start: s.time, title: `cut at ${formatClock(s.time)}` })));
    for (const [key, label] of STRETCHES) {
      this.timeline.lane(key, label, (r[key] || []).map((s) => ({
        start: s.start, end: s.end ?? s.start + (s.duration || 0), title: `${label} ${formatClock(s.start)}–${formatClock(s.end)}`,
      })));
    }
    const summary = [count(scenes.length, "scene cut", "scene cuts"),
      ...STRETCHES.map(([key, , one, many]) => count((r[key] || []).length, one, many))].join(" · ");
    const lists = [
      this.list("Scene cuts", scenes, (s) => this.seekButton(s.time, `${formatClock(s.time)} (score ${number(s.score, 2)})`)),
      ...STRETCHES.map(([key, label]) => this.list(`${label} stretches`, r[key] || [], (s) => this.seekButton(s.start,
        `${formatClock(s.start)} – ${formatClock(s.end)} (${formatSeconds(s.duration ?? s.end - s.start)})`))),
    ];
    this.findings.replaceChildren(
      h("p", { class: "findings-when" }, `From the analysis of ${formatTime(job.finished_at)}.`),
      h("p", { class: "findings-summary" }, summary),
      this.loudness(r.loudness), ...lists);
  }

  showRaw(job) {
    this.findings.replaceChildren(h("p", {}, "The analysis finished, but its result has an unexpected shape:"),
      h("pre", { class: "json" }, JSON.stringify(job.result, null, 2)));
  }

  loudness(value) {
    if (!value) return h("p", { class: "loudness" }, "Loudness: not measured (no audio stream).");
    return h("div", { class: "loudness" }, h("h3", {}, "Loudness"),
      h("dl", { class: "facts" },
        h("dt", {}, "Integrated"), h("dd", {}, `${number(value.integrated_lufs)} LUFS`),
        h("dt", {}, "Range"), h("dd", {}, `${number(value.range_lu)} LU`),
        h("dt", {}, "True peak"), h("dd", {}, `${number(value.true_peak_dbtp)} dBTP`)));
  }

  list(title, items, render) {
    if (!items.length) return h("p", { class: "hint" }, `${title}: none found.`);
    return h("details", { class: "finding-list" }, h("summary", {}, `${title} (${items.length})`),
      h("ul", {}, items.map((item) => h("li", {}, render(item)))));
  }
}
