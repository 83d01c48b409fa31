// A timeline under the player: a position track (a keyboard slider that seeks), and lanes of ranges and
// markers — ranges to remove, and the analysis findings (scene cuts, black, silent and frozen stretches).

import { formatClock, h } from "./ui.js";

const pct = (value, duration) => `${Math.max(0, Math.min(100, (100 * value) / duration))}%`;

export class Timeline {
  constructor({ duration, video }) {
    this.duration = duration || 0;
    this.video = video;
    this.lanes = new Map();
    this.labels = h("div", { class: "timeline-labels", "aria-hidden": "true" }, h("span", {}, "Position"));
    this.playhead = h("span", { class: "playhead" });
    this.fill = h("span", { class: "track-fill" });
    this.track = h("div", {
      class: "track", role: "slider", tabindex: "0", "aria-label": "Playback position",
      "aria-valuemin": "0", "aria-valuemax": String(Math.round(this.duration * 10) / 10), "aria-valuenow": "0",
    }, this.fill);
    this.bars = h("div", { class: "timeline-bars" }, this.track, this.playhead);
    this.el = h("div", { class: "timeline" }, this.labels, this.bars);

    this.track.addEventListener("pointerdown", (event) => {
      this.track.setPointerCapture(event.pointerId);
      this.seek(this.timeAt(event));
    });
    this.track.addEventListener("pointermove", (event) => {
      if (this.track.hasPointerCapture(event.pointerId)) this.seek(this.timeAt(event));
    });
    this.track.addEventListener("keydown", (event) => this.key(event));
    for (const name of ["timeupdate", "seeked", "loadedmetadata"]) video.addEventListener(name, () => this.position());
    this.position();
  }

  timeAt(event) {
    const box = this.bars.getBoundingClientRect();
    return Math.max(0, Math.min(this.duration, ((event.clientX - box.left) / box.width) * this.duration));
  }

  seek(time) {
    if (!Number.isFinite(time)) return;
    this.video.currentTime = time;
    this.position(time);
  }

  key(event) {
    const step = event.shiftKey ? 5 : 1;
    const now = this.video.currentTime || 0;
    const to = { ArrowLeft: now - step, ArrowDown: now - step, ArrowRight: now + step, ArrowUp: now + step,
      Home: 0, End: this.duration, PageDown: now - 10, PageUp: now + 10 }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    this.seek(Math.max(0, Math.min(this.duration, to)));
  }

  position(time = this.video.currentTime || 0) {
    if (!this.duration) return;
    this.playhead.style.left = pct(time, this.duration);
    this.fill.style.width = pct(time, this.duration);
    this.track.setAttribute("aria-valuenow", String(Math.round(time * 10) / 10));
    this.track.setAttribute("aria-valuetext", `${formatClock(time)} of ${formatClock(this.duration)}`);
  }

  /** A lane of items [{start, end?, title}] (no end: a marker); created on first use, hidden when empty. */
  lane(name, label, items, { className = name, keepEmpty = false } = {}) {
    let lane = this.lanes.get(name);
    if (!lane) {
      lane = {
        label: h("span", { class: `lane-label lane-${className}` }, label),
        bar: h("div", { class: `lane lane-${className}`, dataset: { lane: name }, title: label }),
      };
      this.lanes.set(name, lane);
      this.labels.append(lane.label);
      this.bars.insertBefore(lane.bar, this.playhead);
    }
    lane.bar.replaceChildren(...items.map((item) => {
      const marker = item.end === undefined || item.end === null;
      const el = h("span", { class: marker ? "marker" : "band", title: item.title || "" });
      el.style.left = pct(item.start, this.duration);
      if (!marker) el.style.width = pct(item.end - item.start, this.duration);
      return el;
    }));
    const hidden = !keepEmpty && items.length === 0;
    lane.bar.hidden = hidden;
    lane.label.hidden = hidden;
    return lane.bar;
  }

  /** Drag across a lane to pick a range; onRange(start, end) gets seconds. A plain click seeks. */
  selectable(name, onRange) {
    const bar = this.lanes.get(name).bar;
    let from = null;
    let ghost = null;
    bar.addEventListener("pointerdown", (event) => {
      from = this.timeAt(event);
      bar.setPointerCapture(event.pointerId);
      ghost = h("span", { class: "band ghost" });
      bar.append(ghost);
      event.preventDefault();
    });
    bar.addEventListener("pointermove", (event) => {
      if (from === null) return;
      const to = this.timeAt(event);
      ghost.style.left = pct(Math.min(from, to), this.duration);
      ghost.style.width = pct(Math.abs(to - from), this.duration);
    });
    const end = (event) => {
      if (from === null) return;
      const to = this.timeAt(event);
      ghost?.remove();
      const [start, stop] = [Math.min(from, to), Math.max(from, to)];
      from = null;
      if (stop - start >= Math.max(0.05, this.duration / 500)) onRange(start, stop);
      else this.seek(start);
    };
    bar.addEventListener("pointerup", end);
    bar.addEventListener("pointercancel", () => {
      from = null;
      ghost?.remove();
    });
  }
}
