// Frame removal: mark ranges on the timeline (drag across the "Remove" lane, or mark start and end at the
// playhead, or type them) and create a copy without them.

import { Submission, api } from "./api.js";
import { clearErrors, showErrors, showLocalErrors } from "./errors.js";
import { trackedJob } from "./jobrow.js";
import { announce, field, formatClock, formError, h } from "./ui.js";

export class CutPanel {
  constructor({ asset, player, timeline, onJob }) {
    this.asset = asset;
    this.video = player.video;
    this.timeline = timeline;
    this.onJob = onJob;
    this.duration = asset.probe?.duration || 0;
    this.ranges = [];
    this.pendingStart = null;
    this.submission = new Submission();

    timeline.lane("remove", "Remove", [], { keepEmpty: true });
    timeline.selectable("remove", (start, end) => this.addRange(start, end));

    this.markStart = h("button", { type: "button", class: "btn", onclick: () => this.mark("start") }, "Mark start at playhead");
    this.markEnd = h("button", { type: "button", class: "btn", onclick: () => this.mark("end") }, "Mark end at playhead");
    this.pending = h("p", { class: "hint", "aria-live": "polite" });
    this.list = h("div", { class: "ranges", id: "cut-ranges", tabindex: "-1", dataset: { field: "ranges" },
      "aria-describedby": "cut-ranges-error" });
    this.listError = h("p", { class: "field-error", id: "cut-ranges-error", hidden: true });
    this.summary = formError();
    this.submit = h("button", { type: "submit", class: "btn btn-primary" }, "Create copy without these ranges");
    this.jobSlot = h("div", { class: "op-job" });
    this.form = h("form", { class: "card form op", novalidate: true, "aria-labelledby": "cut-heading" },
      h("h2", { id: "cut-heading" }, "Remove frames"),
      h("p", { class: "hint" }, "Drag across the “Remove” lane of the timeline, or use the buttons at the playhead. "
        + "Times are seconds; the end is not included."),
      h("div", { class: "form-actions" }, this.markStart, this.markEnd), this.pending,
      this.list, this.listError, this.summary, h("div", { class: "form-actions" }, this.submit), this.jobSlot);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    if (!this.duration) {
      for (const b of [this.markStart, this.markEnd, this.submit]) b.disabled = true;
    }
    this.render();
  }

  mark(which) {
    const now = Math.round((this.video.currentTime || 0) * 1000) / 1000;
    if (which === "start") {
      this.pendingStart = now;
      this.pending.textContent = `Start marked at ${formatClock(now)}; move the playhead and mark the end.`;
      return;
    }
    const start = this.pendingStart ?? 0;
    if (now <= start) {
      this.pending.textContent = `The end (${formatClock(now)}) must be after the start (${formatClock(start)}).`;
      return;
    }
    this.pendingStart = null;
    this.pending.textContent = "";
    this.addRange(start, now);
  }

  addRange(start, end) {
    const round = (t) => Math.round(t * 100) / 100;
    this.ranges.push({ start: round(start), end: round(end) });
    this.ranges.sort((a, b) => a.start - b.start);
    this.render();
    announce(`Range ${formatClock(start)} to ${formatClock(end)} marked for removal.`);
  }

  render() {
    clearErrors(this.form);
    this.timeline.lane("remove", "Remove", this.ranges.filter((r) => r.end > r.start)
      .map((r) => ({ ...r, title: `remove ${formatClock(r.start)}–${formatClock(r.end)}` })), { keepEmpty: true });
    if (!this.ranges.length) {
      this.list.replaceChildren(h("p", { class: "hint" }, "No ranges marked."));
      return;
    }
    this.list.replaceChildren(...this.ranges.map((range, i) => {
      const number = (label, key) => {
        const input = h("input", { type: "number", min: "0", step: "any", inputmode: "decimal", class: "num" });
        input.value = String(range[key]);
        input.addEventListener("change", () => {
          range[key] = input.value.trim() === "" ? NaN : Number(input.value);
          this.timeline.lane("remove", "Remove", this.ranges.filter((r) => r.end > r.start), { keepEmpty: true });
        });
        return field({ label, control: input, name: `range-${i}-${key}`, apiField: `ranges.${i}.${key}` }).wrapper;
      };
      const id = `cut-range-${i}`;
      return h("fieldset", { class: "range", id, dataset: { field: `ranges.${i}` }, "aria-describedby": `${id}-error` },
        h("legend", {}, `Range ${i + 1}`),
        h("div", { class: "range-grid" }, number("Start (s)", "start"), number("End (s)", "end"),
          h("button", { type: "button", class: "btn btn-small btn-danger", onclick: () => this.remove(i) }, `Remove range ${i + 1}`)),
        h("p", { class: "field-error", id: `${id}-error`, hidden: true }));
    }));
  }

  remove(index) {
    this.ranges.splice(index, 1);
    this.render();
    (this.list.querySelector("input") || this.markStart).focus();
  }

  validate() {
    const problems = [];
    if (!this.ranges.length) problems.push({ control: this.list, message: "Mark at least one range to remove." });
    this.ranges.forEach((r, i) => {
      const input = (key) => this.form.querySelector(`[data-field="ranges.${i}.${key}"]`);
      if (!Number.isFinite(r.start) || r.start < 0) problems.push({ control: input("start"), message: "Enter a time of 0 s or more." });
      if (!Number.isFinite(r.end)) problems.push({ control: input("end"), message: "Enter a time in seconds." });
      else if (Number.isFinite(r.start) && r.end <= r.start) problems.push({ control: input("end"), message: "Must be after the start." });
      else if (this.duration && r.start >= this.duration) {
        problems.push({ control: input("start"), message: `Must be before the end of the video (${formatClock(this.duration)}).` });
      }
    });
    return problems;
  }

  async send() {
    if (showLocalErrors(this.form, this.validate())) return;
    const body = { ranges: this.ranges.map(({ start, end }) => ({ start, end })) };
    this.submit.disabled = true;
    try {
      const answer = await api.operate(this.asset.id, "remove-frames", body, this.submission.keyFor(body));
      this.submission.done();
      clearErrors(this.form);
      this.jobSlot.replaceChildren(h("p", {}, "Cutting started; the new copy appears under “Derived assets”."),
        trackedJob(answer.job).el);
      announce("Frame removal started.");
      this.onJob?.(answer.job);
    } catch (err) {
      showErrors(this.form, err);
    } finally {
      this.submit.disabled = false;
    }
  }
}
