// Storyboard previews on the timeline: the asset's storyboard WebVTT names, for each interval, a tile of a
// JPEG sprite sheet (`sheet.jpg#xywh=x,y,w,h`); hovering the position track shows the tile of the time under
// the pointer, as video.js, Plyr and Vidstack do with the same file.

import { withoutToken } from "./assets.js";
import { formatClock, h } from "./ui.js";

const CLOCK = /(?:(\d+):)?(\d{1,2}):(\d{2})\.(\d{3})/;

function seconds(text) {
  const m = CLOCK.exec(text);
  if (!m) return NaN;
  return Number(m[1] || 0) * 3600 + Number(m[2]) * 60 + Number(m[3]) + Number(m[4]) / 1000;
}

/** The cues of a storyboard WebVTT: [{start, end, url, x, y, w, h}], URLs resolved against the VTT's. */
export function parseStoryboard(text, base) {
  const cues = [];
  for (const block of text.replace(/\r\n?/g, "\n").split(/\n{2,}/)) {
    const lines = block.split("\n");
    const at = lines.findIndex((line) => line.includes("-->"));
    if (at < 0 || !lines[at + 1]) continue;
    const [from, to] = lines[at].split("-->");
    const ref = /^(.+?)#xywh=(\d+),(\d+),(\d+),(\d+)$/.exec(lines[at + 1].trim());
    if (!ref) continue;
    cues.push({
      start: seconds(from), end: seconds(to), url: new URL(ref[1], base).href,
      x: Number(ref[2]), y: Number(ref[3]), w: Number(ref[4]), h: Number(ref[5]),
    });
  }
  return cues.filter((cue) => Number.isFinite(cue.start) && Number.isFinite(cue.end));
}

export class StoryboardPreview {
  constructor(timeline) {
    this.timeline = timeline;
    this.cues = [];
    this.url = null;
    this.time = h("span", { class: "storyboard-time" });
    this.picture = h("div", { class: "storyboard-picture", role: "img" });
    this.el = h("div", { class: "storyboard-preview", hidden: true, "aria-hidden": "true" }, this.picture, this.time);
    timeline.bars.append(this.el);
    const track = timeline.track;
    track.addEventListener("pointermove", (event) => this.show(event));
    track.addEventListener("pointerleave", () => this.hide());
    track.addEventListener("pointerdown", () => this.hide());
  }

  /** Fetch and read the asset's storyboard once (a new VTT URL, token aside, reads it again). */
  async load(storyboard) {
    const url = storyboard?.vtt_url || null;
    if (withoutToken(url) === withoutToken(this.url)) return;
    this.url = url;
    this.cues = [];
    if (!url) return;
    try {
      // No API key: the URL carries a playback token when auth is on, as every file URL does.
      const response = await fetch(url, { cache: "no-store" });
      if (!response.ok || this.url !== url) return;
      this.cues = parseStoryboard(await response.text(), new URL(url, location.href).href);
    } catch {
      this.cues = [];  // no previews; the timeline works without them
    }
  }

  cueAt(time) {
    return this.cues.find((cue) => cue.start <= time && time < cue.end) || this.cues.at(-1);
  }

  show(event) {
    if (!this.cues.length) return;
    const time = this.timeline.timeAt(event);
    const cue = this.cueAt(time);
    if (!cue) return;
    const { picture } = this;
    picture.style.width = `${cue.w}px`;
    picture.style.height = `${cue.h}px`;
    picture.style.backgroundImage = `url("${cue.url.replace(/"/g, "%22")}")`;
    picture.style.backgroundPosition = `-${cue.x}px -${cue.y}px`;
    picture.setAttribute("aria-label", `Preview at ${formatClock(time)}`);
    this.el.dataset.start = String(cue.start);
    this.time.textContent = formatClock(time);
    const box = this.timeline.bars.getBoundingClientRect();
    const left = Math.max(0, Math.min(box.width - cue.w, event.clientX - box.left - cue.w / 2));
    this.el.style.left = `${left}px`;
    this.el.hidden = false;
  }

  hide() {
    this.el.hidden = true;
  }
}
