// The clip tool: choose a range (drag across the "Clip" lane of the timeline, or set its ends at the playhead,
// or type them) and an aspect, and make a new asset of just those frames. A crop is previewed on the picture.

import { Submission, api } from "./api.js";
import { clearErrors, showErrors, showLocalErrors } from "./errors.js";
import { trackedJob } from "./jobrow.js";
import { announce, field, formatClock, formError, h } from "./ui.js";

const ASPECTS = [["", "Original (no crop)"], ["9:16", "9:16 (vertical)"], ["1:1", "1:1 (square)"],
  ["4:5", "4:5 (portrait)"], ["16:9", "16:9 (wide)"]];

export class ClipPanel {
  constructor({ asset, player, timeline, onJob }) {
    this.asset = asset;
    this.player = player;
    this.timeline = timeline;
    this.onJob = onJob;
    this.duration = asset.probe?.duration || 0;
    this.hasVideo = Boolean(asset.probe?.width && asset.probe?.height);
    this.submission = new Submission();

    const number = () => h("input", { type: "number", min: "0", step: "any", inputmode: "decimal", class: "num" });
    this.start = field({ label: "Clip start (s)", name: "clip-start", apiField: "start", control: number() });
    this.end = field({ label: "Clip end (s)", name: "clip-end", apiField: "end", control: number() });
    this.aspect = field({ label: "Aspect", name: "clip-aspect", apiField: "crop crop.aspect",
      control: h("select", {}, ...ASPECTS.map(([value, text]) => h("option", { value }, text))) });
    this.centre = field({ label: "Crop centre", name: "clip-x", apiField: "crop.x",
      hint: "Where the crop sits across the picture: 0 is the left edge, 1 the right.",
      control: h("input", { type: "range", min: "0", max: "1", step: "0.01", value: "0.5" }) });
    this.summary = formError();
    this.submit = h("button", { type: "submit", class: "btn btn-primary" }, "Create clip");
    this.jobSlot = h("div", { class: "op-job" });
    this.preview = h("div", { class: "crop-preview", hidden: true, "aria-hidden": "true" });
    player.stage.append(this.preview);

    timeline.lane("clip", "Clip", [], { keepEmpty: true });
    timeline.selectable("clip", (start, end) => this.setRange(start, end));
    const at = (which) => h("button", { type: "button", class: "btn", onclick: () => this.mark(which) },
      `Set ${which} at playhead`);
    this.form = h("form", { class: "card form op", novalidate: true, "aria-labelledby": "clip-heading" },
      h("h2", { id: "clip-heading" }, "Clip"),
      h("p", { class: "hint" }, "Drag across the “Clip” lane of the timeline, or set the ends at the playhead. "
        + "The clip keeps the frames from its start up to (not including) its end, with their sound."),
      h("div", { class: "form-actions" }, at("start"), at("end")),
      h("div", { class: "range-grid" }, this.start.wrapper, this.end.wrapper),
      this.hasVideo ? this.aspect.wrapper : null, this.centre.wrapper, this.summary,
      h("div", { class: "form-actions" }, this.submit), this.jobSlot);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    for (const input of [this.start.control, this.end.control]) input.addEventListener("input", () => this.show());
    this.aspect.control.addEventListener("change", () => this.show());
    this.centre.control.addEventListener("input", () => this.show());
    this.resize = new ResizeObserver(() => this.show());
    this.resize.observe(player.stage);
    if (!this.duration) this.submit.disabled = true;
    this.show();
  }

  mark(which) {
    const now = Math.round((this.player.video.currentTime || 0) * 1000) / 1000;
    (which === "start" ? this.start : this.end).control.value = String(now);
    this.show();
  }

  setRange(start, end) {
    const round = (t) => Math.round(t * 100) / 100;
    this.start.control.value = String(round(start));
    this.end.control.value = String(round(end));
    this.show();
    announce(`Clip from ${formatClock(start)} to ${formatClock(end)}.`);
  }

  values() {
    const read = (input) => (input.value.trim() === "" ? NaN : Number(input.value));
    return { start: read(this.start.control), end: read(this.end.control) };
  }

  /** The range on the timeline and the crop on the picture, as they stand. */
  show() {
    const { start, end } = this.values();
    const band = Number.isFinite(start) && Number.isFinite(end) && end > start
      ? [{ start, end, title: `clip ${formatClock(start)}–${formatClock(end)}` }] : [];
    // Redrawn only when the range changes: a redraw replaces the lane, and with it a drag in progress
    // (the player's stage resizes as its video loads, which calls show()).
    const drawn = JSON.stringify(band);
    if (drawn !== this.drawn) {
      this.drawn = drawn;
      this.timeline.lane("clip", "Clip", band, { keepEmpty: true });
    }
    const aspect = this.aspect.control.value;
    this.centre.wrapper.hidden = !aspect;
    this.preview.hidden = !aspect || !this.hasVideo;
    if (this.preview.hidden) return;
    const { width, height } = this.asset.probe;
    const [aw, ah] = aspect.split(":").map(Number);
    const w = Math.min(width, (height * aw) / ah);
    const hgt = Math.min(height, (width * ah) / aw);
    const x = Math.max(0, Math.min(width - w, Number(this.centre.control.value) * width - w / 2));
    const box = this.player.toDisplay({ x, y: (height - hgt) / 2, w, h: hgt });
    Object.assign(this.preview.style, { left: `${box.x}px`, top: `${box.y}px`, width: `${box.w}px`, height: `${box.h}px` });
  }

  validate() {
    const { start, end } = this.values();
    const problems = [];
    if (!Number.isFinite(start) || start < 0) problems.push({ control: this.start.control, message: "Enter a time of 0 s or more." });
    if (!Number.isFinite(end)) problems.push({ control: this.end.control, message: "Enter a time in seconds." });
    else if (Number.isFinite(start) && end <= start) problems.push({ control: this.end.control, message: "Must be after the start." });
    else if (this.duration && end > this.duration + 1e-6) {
      problems.push({ control: this.end.control, message: `Must be at most the length of the video (${formatClock(this.duration)}).` });
    }
    return problems;
  }

  async send() {
    if (showLocalErrors(this.form, this.validate())) return;
    const { start, end } = this.values();
    const aspect = this.aspect.control.value;
    const body = { start, end, crop: aspect ? { aspect, x: Number(this.centre.control.value) } : null };
    this.submit.disabled = true;
    try {
      const answer = await api.operate(this.asset.id, "clip", body, this.submission.keyFor(body));
      this.submission.done();
      clearErrors(this.form);
      this.jobSlot.replaceChildren(h("p", {}, "Clipping started; the clip appears under “Derived assets”."),
        trackedJob(answer.job).el);
      announce("Clip started.");
      this.onJob?.(answer.job);
    } catch (err) {
      showErrors(this.form, err);
    } finally {
      this.submit.disabled = false;
    }
  }

  dispose() {
    this.resize.disconnect();
    this.preview.remove();
  }
}
