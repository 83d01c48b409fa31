// Shared bits about media assets: names, facts, pipelines, thumbnails.

import { api } from "./api.js";
import { formatBytes, formatClock, formatSeconds, h, shortId } from "./ui.js";

export const PIPELINE = ["hls", "thumbnail", "mp4", "audio", "storyboard"];
const STEP_NAMES = { hls: "HLS stream", thumbnail: "thumbnail", mp4: "MP4 download", audio: "audio download (M4A)",
  storyboard: "storyboard (timeline previews)" };
export const ACTIVE = new Set(["pending", "uploading", "importing", "processing", "deleting"]);

export function assetName(asset) {
  if (asset.title) return asset.title;
  if (asset.original?.filename) return asset.original.filename;
  if (asset.source?.filename) return asset.source.filename; // an upload still arriving has no original yet
  if (asset.source?.url) return asset.source.url.replace(/^https?:\/\//, "").slice(0, 80);
  if (asset.parent_id) return `${asset.source?.type || "derived"} of ${shortId(asset.parent_id)}`;
  return `asset ${shortId(asset.id)}`;
}

/** A rung of the ladder by its shorter side, as the README names them: a 1080×1920 portrait stream is 1080p. */
export const rungName = (width, height) => `${width && height ? Math.min(width, height) : height}p`;

// Titles of assets other views mention (job rows, "derived from"), fetched once and kept a little while.
const TITLE_TTL_MS = 10000;
const titles = new Map();

/** The title of asset `id` (null while unknown; "deleted asset" once it is gone), calling `then(title)`
 * when it arrives. */
export function assetTitle(id, then) {
  const known = titles.get(id);
  if (known && Date.now() - known.at < TITLE_TTL_MS) {
    if (known.title !== null) return known.title;
    known.waiting.push(then);
    return null;
  }
  const entry = { title: known?.title ?? null, at: Date.now(), waiting: [then] };
  titles.set(id, entry);
  api.getMedia(id).then((asset) => assetName(asset), (err) => (err.status === 404 ? "deleted asset" : null))
    .then((title) => {
      if (title === null) {
        titles.delete(id);  // a failed look-up is tried again next time
        return;
      }
      entry.title = title;
      for (const callback of entry.waiting.splice(0)) callback?.(title);
    });
  return entry.title;
}

export const resolution = (asset) => (asset.probe?.width && asset.probe?.height
  ? `${asset.probe.width}×${asset.probe.height}` : "");

export const duration = (asset) => (asset.probe?.duration ? formatSeconds(asset.probe.duration) : "");

export const size = (asset) => (asset.original?.size ? formatBytes(asset.original.size) : "");

/** A file URL without its playback token: with auth on, every fetch of an asset signs a fresh one. */
export const withoutToken = (url) => (url ? url.replace(/[?&]token=[^&#]*/, "") : url);

/** Set an <img>'s source. With auth on the URL carries a playback token (fresh on every fetch of the asset),
 * so the same image under a new token is left alone rather than loaded again. */
export function setImage(img, url) {
  const same = withoutToken(url || "");
  if (img.dataset.src === same) return;
  img.dataset.src = same;
  if (url) img.src = url;
  else img.removeAttribute("src");
}

/** Pipeline checkboxes (all on by default) in a fieldset that takes the API's "pipeline" errors. */
export function pipelineFieldset(legend = "Then make") {
  const id = `pipeline-${Math.random().toString(36).slice(2, 8)}`;
  const boxes = PIPELINE.map((step) => {
    const box = h("input", { type: "checkbox", value: step, checked: true, id: `${id}-${step}` });
    return { step, box, label: h("label", { class: "check", for: box.id }, box, ` ${STEP_NAMES[step] || step}`) };
  });
  const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  const fieldset = h("fieldset", { class: "pipeline", id, dataset: { field: "pipeline" }, "aria-describedby": error.id },
    h("legend", {}, legend), boxes.map((b) => b.label), error);
  return { fieldset, values: () => boxes.filter((b) => b.box.checked).map((b) => b.step) };
}

const span = (start, end) => `${formatClock(start || 0)}–${end === null || end === undefined ? "end" : formatClock(end)}`;

/** What made a derived asset, from its `source`: a list of lines (text only), or null for an original. */
export function describeOperation(source) {
  if (!source) return null;
  if (source.type === "mask") {
    const lines = (source.regions || []).map((r) => `${r.style || "blur"} ${r.w}×${r.h} px at ${r.x},${r.y}, `
      + `${span(r.start, r.end)}`);
    if (source.audio && source.audio !== "keep") lines.push(`sound ${source.audio === "mute" ? "muted" : "removed"}`);
    for (const r of source.audio_ranges || []) lines.push(`sound ${r.style === "bleep" ? "bleeped" : "muted"} ${span(r.start, r.end)}`);
    return { what: "Masked", lines };
  }
  if (source.type === "remove_frames") {
    return { what: "Frames removed", lines: (source.ranges || []).map((r) => span(r.start, r.end)) };
  }
  if (source.type === "clip") {
    const crop = source.crop ? `, cropped to ${source.crop.aspect} around ${Math.round((source.crop.x ?? 0.5) * 100)} % `
      + "from the left" : "";
    return { what: "Clip", lines: [`${span(source.start, source.end)}${crop}`] };
  }
  return null;
}
