// Shared bits about media assets: names, facts, pipelines, thumbnails.

import { formatBytes, formatSeconds, h, shortId } from "./ui.js";

export const PIPELINE = ["hls", "thumbnail", "mp4", "audio", "storyboard"];
const STEP_NAMES = { hls: "HLS stream", thumbnail: "thumbnail", mp4: "MP4 download", audio: "audio download (M4A)",
  storyboard: "storyboard (timeline previews)" };
export const ACTIVE = new Set(["pending", "uploading", "importing", "processing", "deleting"]);

export function assetName(asset) {
  if (asset.original?.filename) return asset.original.filename;
  if (asset.source?.filename) return asset.source.filename; // an upload still arriving has no original yet
  if (asset.source?.url) return asset.source.url.replace(/^https?:\/\//, "").slice(0, 80);
  if (asset.parent_id) return `${asset.source?.type || "derived"} of ${shortId(asset.parent_id)}`;
  return `asset ${shortId(asset.id)}`;
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
