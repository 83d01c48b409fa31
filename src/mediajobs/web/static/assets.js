// Shared bits about media assets: names, facts, pipelines, thumbnails behind an API key.

import { auth } from "./api.js";
import { formatBytes, formatSeconds, h, shortId } from "./ui.js";

export const PIPELINE = ["hls", "thumbnail"];
export const ACTIVE = new Set(["pending", "importing", "processing", "deleting"]);

export function assetName(asset) {
  if (asset.original?.filename) return asset.original.filename;
  if (asset.source?.url) return asset.source.url.replace(/^https?:\/\//, "").slice(0, 80);
  if (asset.parent_id) return `${asset.source?.type || "derived"} of ${shortId(asset.parent_id)}`;
  return `asset ${shortId(asset.id)}`;
}

export const resolution = (asset) => (asset.probe?.width && asset.probe?.height
  ? `${asset.probe.width}×${asset.probe.height}` : "");

export const duration = (asset) => (asset.probe?.duration ? formatSeconds(asset.probe.duration) : "");

export const size = (asset) => (asset.original?.size ? formatBytes(asset.original.size) : "");

/** Set an <img>'s source; with an API key the image is fetched with the header, since <img> cannot send one. */
export async function setImage(img, url) {
  if (img.dataset.src === url) return;
  img.dataset.src = url || "";
  if (!url) {
    img.removeAttribute("src");
    return;
  }
  if (!auth.key) {
    img.src = url;
    return;
  }
  try {
    const response = await fetch(url, { headers: auth.headers() });
    if (!response.ok) return;
    const blob = await response.blob();
    if (img.dataset.src !== url) return;
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(blob);
  } catch {
    // The reconnecting banner covers an absent server; a missing thumbnail needs no alarm of its own.
  }
}

/** Pipeline checkboxes (all on by default) in a fieldset that takes the API's "pipeline" errors. */
export function pipelineFieldset(legend = "Then make") {
  const id = `pipeline-${Math.random().toString(36).slice(2, 8)}`;
  const boxes = PIPELINE.map((step) => {
    const box = h("input", { type: "checkbox", value: step, checked: true, id: `${id}-${step}` });
    return { step, box, label: h("label", { class: "check", for: box.id }, box, ` ${step === "hls" ? "HLS stream" : "thumbnail"}`) };
  });
  const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  const fieldset = h("fieldset", { class: "pipeline", id, dataset: { field: "pipeline" }, "aria-describedby": error.id },
    h("legend", {}, legend), boxes.map((b) => b.label), error);
  return { fieldset, values: () => boxes.filter((b) => b.box.checked).map((b) => b.step) };
}
