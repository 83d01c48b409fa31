// The HLS player: a <video> fed by hls.js wherever MSE exists (also in Chromium, whose native HLS offers no
// rendition choice), Safari's own HLS elsewhere, a rendition choice (auto by default), a captions choice (the
// master's SUBTITLES tracks, shown by the browser as text), and a canvas laid over the picture for drawing on it.

import { rungName, withoutToken } from "./assets.js";
import { field, h } from "./ui.js";

let hlsModule = null;
const loadHls = () => {
  hlsModule ||= import("./vendor/hls.min.mjs").then((m) => m.default);
  return hlsModule;
};

const mbps = (bits) => (bits ? `${(bits / 1e6).toFixed(bits < 1e6 ? 2 : 1)} Mbit/s` : "");

export class Player {
  constructor({ width, height }) {
    this.source = { width, height };
    this.hls = null;
    this.url = null;
    this.video = h("video", { class: "video", controls: true, playsinline: true, preload: "metadata" });
    this.overlay = h("canvas", { class: "overlay", "aria-hidden": "true" });
    this.empty = h("p", { class: "player-empty" }, "No stream yet.");
    this.stage = h("div", { class: "player-stage" }, this.video, this.overlay, this.empty);
    if (width && height) this.stage.style.aspectRatio = `${width} / ${height}`;
    this.quality = field({ label: "Quality", name: "quality", control: h("select", { disabled: true },
      h("option", { value: "-1" }, "Auto")) });
    this.captions = field({ label: "Captions", name: "captions", control: h("select", { disabled: true },
      h("option", { value: "-1" }, "Off")) });
    this.captions.control.addEventListener("change", () => this.showCaptions(Number(this.captions.control.value)));
    this.playing = h("span", { class: "hint playing-level", "aria-live": "polite" });
    this.message = h("p", { class: "list-error", role: "alert", hidden: true });
    this.quality.control.addEventListener("change", () => {
      if (this.hls) this.hls.currentLevel = Number(this.quality.control.value);
    });
    this.bar = h("div", { class: "player-bar" }, this.quality.wrapper, this.captions.wrapper, this.playing);
    this.el = h("div", { class: "player" }, this.stage, this.bar, this.message);
    // Safari's own HLS lists the master's subtitles as text tracks of the element.
    this.video.textTracks.addEventListener?.("addtrack", () => {
      if (!this.hls) this.subtitleChoices([...this.video.textTracks].filter((t) => /subtitles|captions/.test(t.kind)));
    });
  }

  /** Load the stream again where it was (a new caption track is only in a freshly fetched master). */
  async reload() {
    const { url } = this;
    if (!url) return;
    const at = this.video.currentTime || 0;
    const paused = this.video.paused;
    const chosen = this.captions.control.value === "-1" ? null : this.captions.control.selectedOptions[0]?.textContent;
    this.destroy();
    this.rechoose = chosen;
    this.video.addEventListener("loadedmetadata", () => {
      this.video.currentTime = at;
      if (!paused) this.video.play().catch(() => {});
    }, { once: true });
    await this.load({ master_url: url });
  }

  /** Play the asset's master playlist (once; later calls with the same stream do nothing). */
  async load(hls) {
    const url = hls?.master_url || null;
    if (withoutToken(url) === withoutToken(this.url)) return;
    this.destroy();
    this.url = url;
    this.empty.hidden = Boolean(url);
    if (!url) return;
    const Hls = await loadHls().catch(() => null);
    if (this.url !== url) return;
    if (Hls && Hls.isSupported()) {
      // No API key on these requests: the URLs (and the playlists' child URLs) carry a playback token,
      // which also works where a header cannot be sent (<video src> in Safari, other sites, ffplay).
      const instance = new Hls();
      this.hls = instance;
      instance.on(Hls.Events.MANIFEST_PARSED, () => this.levels(instance));
      instance.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, () => this.subtitleChoices(instance.subtitleTracks));
      instance.on(Hls.Events.LEVEL_SWITCHED, (_, data) => {
        const level = instance.levels[data.level];
        const mode = instance.autoLevelEnabled ? "Auto: " : "";
        this.playing.textContent = level ? `${mode}playing ${rungName(level.width, level.height)}` : "";
      });
      instance.on(Hls.Events.ERROR, (_, data) => this.failed(instance, Hls, data));
      instance.loadSource(url);
      instance.attachMedia(this.video);
    } else if (this.video.canPlayType("application/vnd.apple.mpegurl")) {
      this.video.src = url;  // Safari plays HLS itself and picks the rendition itself
    } else {
      this.show("This browser cannot play HLS streams.");
    }
  }

  levels(instance) {
    const select = this.quality.control;
    select.replaceChildren(h("option", { value: "-1" }, "Auto"),
      ...instance.levels.map((level, index) => h("option", { value: String(index) },
        `${rungName(level.width, level.height)}${level.bitrate ? ` (${mbps(level.bitrate)})` : ""}`)));
    select.disabled = instance.levels.length < 2;
    select.value = "-1";
  }

  /** The captions menu: "Off" and each track by its name and language (names are text, never HTML). */
  subtitleChoices(tracks) {
    const select = this.captions.control;
    const label = (t) => (t.name || t.label || t.lang || t.language || "Captions")
      + ((t.lang || t.language) ? ` (${t.lang || t.language})` : "");
    select.replaceChildren(h("option", { value: "-1" }, "Off"),
      ...tracks.map((track, index) => h("option", { value: String(index) }, label(track))));
    select.disabled = tracks.length === 0;
    const again = [...select.options].findIndex((o) => o.textContent === this.rechoose);
    this.rechoose = null;
    select.value = again > 0 ? select.options[again].value : "-1";
    this.showCaptions(Number(select.value));
  }

  showCaptions(index) {
    if (this.hls) {
      this.hls.subtitleDisplay = index >= 0;
      this.hls.subtitleTrack = index;
      return;
    }
    const tracks = [...this.video.textTracks].filter((t) => /subtitles|captions/.test(t.kind));
    tracks.forEach((track, i) => { track.mode = i === index ? "showing" : "disabled"; });
  }

  failed(instance, Hls, data) {
    if (!data.fatal) return;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      instance.recoverMediaError();
      return;
    }
    this.show(`Playback failed (${data.details}). The stream may still be being made; reload the page to retry.`);
  }

  show(message) {
    this.message.textContent = message;
    this.message.hidden = !message;
  }

  /** Where the picture is drawn inside the element (letterboxing aside), in CSS pixels. */
  frameRect() {
    const box = this.video.getBoundingClientRect();
    const width = this.source.width || this.video.videoWidth || box.width;
    const height = this.source.height || this.video.videoHeight || box.height;
    const scale = Math.min(box.width / width, box.height / height);
    const w = width * scale;
    const hgt = height * scale;
    return { left: (box.width - w) / 2, top: (box.height - hgt) / 2, width: w, height: hgt, scale };
  }

  /** A point on the element (CSS px from its top-left) -> source pixels, clamped to the frame. */
  toSource(x, y) {
    const f = this.frameRect();
    const sx = (x - f.left) / f.scale;
    const sy = (y - f.top) / f.scale;
    return {
      x: Math.round(Math.max(0, Math.min(this.source.width, sx))),
      y: Math.round(Math.max(0, Math.min(this.source.height, sy))),
    };
  }

  /** A source-pixel rectangle -> CSS px on the element. */
  toDisplay({ x, y, w, h: height }) {
    const f = this.frameRect();
    return { x: f.left + x * f.scale, y: f.top + y * f.scale, w: w * f.scale, h: height * f.scale };
  }

  destroy() {
    this.hls?.destroy();
    this.hls = null;
    this.url = null;
    this.video.removeAttribute("src");
    this.captions.control.replaceChildren(h("option", { value: "-1" }, "Off"));
    this.captions.control.disabled = true;
  }
}
