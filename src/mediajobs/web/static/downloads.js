// The asset's downloads: its original, MP4s of its rungs and the audio as M4A, with their sizes; each plays
// in the browser or is saved under a readable name (`?download=1`). Another rung can be made as MP4.

import { Submission, api } from "./api.js";
import { rungName } from "./assets.js";
import { clearErrors, showErrors } from "./errors.js";
import { announce, field, formatBytes, h } from "./ui.js";

const withDownload = (url) => `${url}${url.includes("?") ? "&" : "?"}download=1`;

function label(download, asset) {
  if (download.type === "original") {
    const name = asset.original?.filename;
    return name ? `Original (${name})` : "Original";
  }
  if (download.type === "audio") return "Audio (M4A)";
  return `MP4 ${rung(asset, download.height)}`;
}

/** A rung's name by its shorter side (a portrait 1080×1920 rung is 1080p); downloads name it by height. */
function rung(asset, height) {
  const variant = (asset.hls?.variants || []).find((v) => v.height === height);
  return rungName(variant?.width, height);
}

export class DownloadsCard {
  constructor({ onJob }) {
    this.onJob = onJob;
    this.list = h("ul", { class: "downloads", "aria-label": "Downloads" });
    this.empty = h("p", { class: "hint" }, "Nothing to download yet.");
    this.rung = field({ label: "Another rung as MP4", name: "height", apiField: "height",
      control: h("select", {}) });
    this.button = h("button", { type: "submit", class: "btn" }, "Make MP4");
    this.submission = new Submission();
    this.form = h("form", { class: "form downloads-form", novalidate: true, hidden: true },
      this.rung.wrapper, h("p", { class: "form-error", role: "alert", hidden: true }),
      h("div", { class: "form-actions" }, this.button));
    this.form.addEventListener("submit", (event) => this.make(event));
    this.el = h("section", { class: "card", "aria-labelledby": "downloads-heading" },
      h("h2", { id: "downloads-heading" }, "Downloads"), this.empty, this.list, this.form);
    this.asset = null;
  }

  update(asset) {
    this.asset = asset;
    const downloads = asset.downloads || [];
    this.list.replaceChildren(...downloads.map((d) => h("li", { class: "download", dataset: { type: d.type } },
      h("span", { class: "download-name" }, label(d, asset)),
      h("span", { class: "download-size" }, d.ready ? formatBytes(d.size) : "being made…"),
      d.ready && d.url ? h("span", { class: "download-links" },
        h("a", { href: withDownload(d.url), download: "", class: "btn btn-small" }, "Download"),
        h("a", { href: d.url, target: "_blank", rel: "noopener" }, "Play")) : null)));
    this.empty.hidden = downloads.length > 0;
    const made = new Set(downloads.filter((d) => d.type === "mp4").map((d) => d.height));
    const rungs = (asset.hls?.variants || []).map((v) => v.height).filter((height) => height && !made.has(height));
    const select = this.rung.control;
    const current = select.value;
    select.replaceChildren(...rungs.map((height) => h("option", { value: String(height) }, rung(asset, height))));
    if (rungs.includes(Number(current))) select.value = current;
    this.form.hidden = asset.state !== "ready" || rungs.length === 0;
  }

  async make(event) {
    event.preventDefault();
    const body = { type: "mp4", height: Number(this.rung.control.value) };
    this.button.disabled = true;
    try {
      const answer = await api.operate(this.asset.id, "downloads", body, this.submission.keyFor(body));
      this.submission.done();
      clearErrors(this.form);
      announce(`Making an MP4 of ${body.height}p.`);
      this.onJob?.(answer.job);
    } catch (err) {
      showErrors(this.form, err);
    } finally {
      this.button.disabled = false;
    }
  }
}
