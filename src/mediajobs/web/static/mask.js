// Masking: draw rectangles on the paused frame (or add them from the keyboard), pick a style and time range for
// each, and create a masked copy. Rectangles are kept in source pixels (the probe's width × height), whatever
// size the picture is shown at.

import { Submission, api } from "./api.js";
import { clearErrors, showErrors, showLocalErrors } from "./errors.js";
import { trackedJob } from "./jobrow.js";
import { announce, field, formError, h } from "./ui.js";

const STYLES = ["blur", "black", "pixelate"];
const MIN_DRAG_PX = 4;

export class MaskPanel {
  constructor({ asset, player, onJob }) {
    this.asset = asset;
    this.player = player;
    this.onJob = onJob;
    this.regions = [];
    this.drawing = false;
    this.drag = null;
    this.submission = new Submission();
    const { width, height } = asset.probe || {};
    this.width = width;
    this.height = height;

    this.toggle = h("button", { type: "button", class: "btn", "aria-pressed": "false", onclick: () => this.setDrawing(!this.drawing) },
      "Draw on the video");
    this.add = h("button", { type: "button", class: "btn", onclick: () => this.addRegion(this.centered()) }, "Add a region");
    this.list = h("div", { class: "regions", id: "mask-regions", tabindex: "-1", dataset: { field: "regions" },
      "aria-describedby": "mask-regions-error" });
    this.listError = h("p", { class: "field-error", id: "mask-regions-error", hidden: true });
    this.summary = formError();
    this.jobSlot = h("div", { class: "op-job" });
    this.submit = h("button", { type: "submit", class: "btn btn-primary" }, "Create masked copy");
    this.form = h("form", { class: "card form op", novalidate: true, "aria-labelledby": "mask-heading" },
      h("h2", { id: "mask-heading" }, "Mask regions"),
      h("p", { class: "hint" }, "Pause on a frame, press “Draw on the video” and drag rectangles over what to hide. "
        + "Coordinates are pixels of the source frame"
        + (width ? ` (${width}×${height})` : "") + "; leave End empty to mask until the end."),
      h("div", { class: "form-actions" }, this.toggle, this.add),
      this.list, this.listError, this.summary, h("div", { class: "form-actions" }, this.submit), this.jobSlot);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });

    const canvas = player.overlay;
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", (e) => this.up(e));
    canvas.addEventListener("pointercancel", () => this.cancelDrag());
    this.resize = new ResizeObserver(() => this.draw());
    this.resize.observe(player.stage);
    player.video.addEventListener("timeupdate", () => this.draw());
    if (!width || !height) {
      this.toggle.disabled = true;
      this.add.disabled = true;
      this.submit.disabled = true;
    }
    this.renderList();
  }

  setDrawing(on) {
    this.drawing = on;
    this.toggle.setAttribute("aria-pressed", String(on));
    this.toggle.textContent = on ? "Stop drawing" : "Draw on the video";
    this.player.stage.classList.toggle("drawing", on);
    if (on) this.player.video.pause();
    this.draw();
  }

  point(event) {
    const box = this.player.overlay.getBoundingClientRect();
    return { x: event.clientX - box.left, y: event.clientY - box.top };
  }

  down(event) {
    if (!this.drawing) return;
    this.player.overlay.setPointerCapture(event.pointerId);
    this.drag = { from: this.point(event), to: this.point(event) };
    event.preventDefault();
  }

  move(event) {
    if (!this.drag) return;
    this.drag.to = this.point(event);
    this.draw();
  }

  up(event) {
    if (!this.drag) return;
    this.drag.to = this.point(event);
    const { from, to } = this.drag;
    this.drag = null;
    if (Math.abs(to.x - from.x) < MIN_DRAG_PX || Math.abs(to.y - from.y) < MIN_DRAG_PX) {
      this.draw();
      return;
    }
    const a = this.player.toSource(Math.min(from.x, to.x), Math.min(from.y, to.y));
    const b = this.player.toSource(Math.max(from.x, to.x), Math.max(from.y, to.y));
    if (b.x - a.x < 1 || b.y - a.y < 1) return;
    this.addRegion({ x: a.x, y: a.y, w: b.x - a.x, h: b.y - a.y });
  }

  cancelDrag() {
    this.drag = null;
    this.draw();
  }

  centered() {
    const w = Math.round(this.width / 4);
    const hgt = Math.round(this.height / 4);
    return { x: Math.round((this.width - w) / 2), y: Math.round((this.height - hgt) / 2), w, h: hgt };
  }

  addRegion(rect) {
    const last = this.regions[this.regions.length - 1];
    this.regions.push({ ...rect, style: last?.style || "blur", start: 0, end: null });
    this.renderList();
    this.draw();
    announce(`Region ${this.regions.length} added: ${rect.w}×${rect.h} at ${rect.x}, ${rect.y}.`);
  }

  renderList() {
    clearErrors(this.form);
    if (!this.regions.length) {
      this.list.replaceChildren(h("p", { class: "hint" }, "No regions yet."));
      return;
    }
    this.list.replaceChildren(...this.regions.map((region, i) => this.regionFields(region, i)));
  }

  regionFields(region, i) {
    const number = (label, key, attrs = {}) => {
      const input = h("input", { type: "number", step: "any", inputmode: "decimal", class: "num", ...attrs });
      input.value = region[key] === null || region[key] === undefined ? "" : String(region[key]);
      input.addEventListener("input", () => {
        const text = input.value.trim();
        region[key] = text === "" ? (key === "end" ? null : NaN) : Number(text);
        this.draw();
      });
      return field({ label, control: input, name: `region-${i}-${key}`, apiField: `regions.${i}.${key}` }).wrapper;
    };
    const style = h("select", {}, STYLES.map((s) => h("option", { value: s }, s)));
    style.value = region.style;
    style.addEventListener("change", () => {
      region.style = style.value;
      this.draw();
    });
    const id = `mask-region-${i}`;
    return h("fieldset", { class: "region", id, dataset: { field: `regions.${i}` }, "aria-describedby": `${id}-error` },
      h("legend", {}, `Region ${i + 1}`),
      h("div", { class: "region-grid" },
        number("X (px)", "x", { min: "0", step: "1" }), number("Y (px)", "y", { min: "0", step: "1" }),
        number("Width (px)", "w", { min: "1", step: "1" }), number("Height (px)", "h", { min: "1", step: "1" }),
        field({ label: "Style", control: style, name: `region-${i}-style`, apiField: `regions.${i}.style` }).wrapper,
        number("Start (s)", "start", { min: "0" }), number("End (s)", "end", { min: "0", placeholder: "end" })),
      h("button", { type: "button", class: "btn btn-small btn-danger", onclick: () => this.remove(i) }, `Remove region ${i + 1}`),
      h("p", { class: "field-error", id: `${id}-error`, hidden: true }));
  }

  remove(index) {
    this.regions.splice(index, 1);
    this.renderList();
    this.draw();
    (this.list.querySelector("input") || this.add).focus();
  }

  draw() {
    const canvas = this.player.overlay;
    const box = this.player.stage.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(box.width * ratio) || canvas.height !== Math.round(box.height * ratio)) {
      canvas.width = Math.round(box.width * ratio);
      canvas.height = Math.round(box.height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, box.width, box.height);
    if (!this.width) return;
    const now = this.player.video.currentTime || 0;
    this.regions.forEach((region, i) => {
      if (![region.x, region.y, region.w, region.h].every(Number.isFinite)) return;
      const r = this.player.toDisplay(region);
      const active = now >= (region.start || 0) && (region.end === null || now < region.end);
      ctx.fillStyle = region.style === "black" ? "rgba(0,0,0,0.7)" : "rgba(80,160,255,0.25)";
      ctx.globalAlpha = active ? 1 : 0.4;
      ctx.fillRect(r.x, r.y, r.w, r.h);
      ctx.strokeStyle = "#ffd400";
      ctx.lineWidth = 2;
      ctx.setLineDash(active ? [] : [6, 4]);
      ctx.strokeRect(r.x, r.y, r.w, r.h);
      ctx.setLineDash([]);
      ctx.fillStyle = "#ffd400";
      ctx.font = "bold 13px system-ui, sans-serif";
      ctx.fillText(`${i + 1} ${region.style}`, r.x + 4, r.y + 15);
    });
    ctx.globalAlpha = 1;
    if (this.drag) {
      const { from, to } = this.drag;
      ctx.strokeStyle = "#ffffff";
      ctx.setLineDash([5, 3]);
      ctx.lineWidth = 2;
      ctx.strokeRect(Math.min(from.x, to.x), Math.min(from.y, to.y), Math.abs(to.x - from.x), Math.abs(to.y - from.y));
      ctx.setLineDash([]);
    }
  }

  validate() {
    const problems = [];
    if (!this.regions.length) {
      problems.push({ control: this.list, message: "Add at least one region: draw one on the paused video, or press “Add a region”." });
    }
    this.regions.forEach((r, i) => {
      const input = (key) => this.form.querySelector(`[data-field="regions.${i}.${key}"]`);
      for (const key of ["x", "y", "w", "h", "start"]) {
        if (!Number.isFinite(r[key])) problems.push({ control: input(key), message: "Enter a number." });
      }
      if (r.w <= 0) problems.push({ control: input("w"), message: "Must be at least 1 pixel." });
      if (r.h <= 0) problems.push({ control: input("h"), message: "Must be at least 1 pixel." });
      if (r.end !== null && Number.isFinite(r.start) && !(r.end > r.start)) {
        problems.push({ control: input("end"), message: `Must be after the start (${r.start} s), or empty for “until the end”.` });
      }
    });
    return problems;
  }

  async send() {
    if (showLocalErrors(this.form, this.validate())) return;
    const body = { regions: this.regions.map(({ x, y, w, h: height, start, end, style }) => ({ x, y, w, h: height, start, end, style })) };
    this.submit.disabled = true;
    try {
      const answer = await api.operate(this.asset.id, "mask", body, this.submission.keyFor(body));
      this.submission.done();
      clearErrors(this.form);
      this.jobSlot.replaceChildren(h("p", {}, "Masking started; the masked copy appears under “Derived assets”."),
        trackedJob(answer.job).el);
      this.setDrawing(false);
      announce("Masking started.");
      this.onJob?.(answer.job);
    } catch (err) {
      showErrors(this.form, err);
    } finally {
      this.submit.disabled = false;
    }
  }

  dispose() {
    this.resize.disconnect();
  }
}
