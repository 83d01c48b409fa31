// The media library, the first page: an upload area on top (a file, dropped or chosen; or a URL to import),
// then the assets, searchable by title, newest first, live.

import { Submission, api } from "./api.js";
import { ACTIVE, assetName, duration, pipelineFieldset, resolution, setImage, size } from "./assets.js";
import { connection } from "./connection.js";
import { clearErrors, messageOf, showErrors, showLocalErrors } from "./errors.js";
import { PLAYABLE_LABEL, followAssetJob, playableEarly } from "./playable.js";
import { uploadForm } from "./upload.js";
import {
  MEDIA_STATES, announce, field, formError, formatPercent, h, progressBar, reconcile, setProgress, shortId,
  stateBadge, updateBadge,
} from "./ui.js";

const REFRESH_MS = 2000;
const PAGE_SIZE = 24;

export class MediaCard {
  constructor(asset) {
    this.asset = null;
    this.unfollow = null;
    this.followed = null;
    this.thumb = h("img", { class: "thumb", alt: "", loading: "lazy", decoding: "async" });
    this.placeholder = h("span", { class: "thumb thumb-empty", "aria-hidden": "true" }, "▶");
    this.title = h("span", { class: "media-title" });
    this.badge = stateBadge(asset.state);
    this.playable = h("span", { class: "media-playable", hidden: true }, PLAYABLE_LABEL);
    this.facts = h("span", { class: "media-facts" });
    this.origin = h("span", { class: "media-origin" });
    this.reason = h("span", { class: "media-reason", hidden: true });
    this.bar = progressBar("Processing progress");
    this.stage = h("span", { class: "media-stage" });
    this.progress = h("span", { class: "media-progress", hidden: true }, this.bar, this.stage);
    this.link = h("a", { class: "media-link", href: `#/media/${asset.id}` },
      h("span", { class: "thumb-frame" }, this.thumb, this.placeholder),
      h("span", { class: "media-body" }, this.title, h("span", { class: "media-line" }, this.badge, this.playable, this.facts),
        this.origin, this.reason, this.progress));
    this.el = h("li", { class: "media-card", dataset: { mediaId: asset.id } }, this.link);
    this.update(asset);
  }

  update(asset) {
    this.asset = asset;
    this.el.dataset.state = asset.state;
    this.title.textContent = assetName(asset);
    updateBadge(this.badge, asset.state);
    this.playable.hidden = !playableEarly(asset);
    this.facts.textContent = [duration(asset), resolution(asset), size(asset)].filter(Boolean).join(" · ");
    this.origin.textContent = asset.parent_id ? `derived from ${shortId(asset.parent_id)}` : "";
    this.origin.hidden = !asset.parent_id;
    // Why it failed, in the words the API gives (the file, not a retry, is the usual fix).
    this.reason.hidden = !(asset.state === "failed" && asset.error);
    this.reason.textContent = asset.error?.message || "";
    this.placeholder.hidden = Boolean(asset.thumbnail_url);
    this.thumb.hidden = !asset.thumbnail_url;
    setImage(this.thumb, asset.thumbnail_url);
    this.thumb.alt = asset.thumbnail_url ? `Thumbnail of ${assetName(asset)}` : "";
    this.watch();
  }

  /** While the asset is being made, show its latest job's progress. */
  watch() {
    const jobId = ACTIVE.has(this.asset.state) ? this.asset.jobs?.[this.asset.jobs.length - 1] : null;
    if (jobId === this.followed) return;
    this.stop();
    this.followed = jobId;
    this.progress.hidden = !jobId;
    if (!jobId) return;
    this.unfollow = followAssetJob(jobId, (job) => {
      if (!job) return;
      setProgress(this.bar, job.progress, `${formatPercent(job.progress)} ${job.stage}`);
      this.stage.textContent = `${formatPercent(job.progress)} ${job.stage || job.state}`;
    });
  }

  stop() {
    this.unfollow?.();
    this.unfollow = null;
    this.followed = null;
  }
}

function importForm(onCreated) {
  const url = field({
    label: "Video URL", name: "url", apiField: "url",
    control: h("input", { type: "url", inputmode: "url", autocomplete: "off", placeholder: "https://…" }),
    hint: "A direct file or a page yt-dlp understands.",
  });
  const pipeline = pipelineFieldset();
  const button = h("button", { type: "submit", class: "btn btn-primary" }, "Import");
  const summary = formError();
  const result = h("p", { class: "form-result", role: "status" });
  const submission = new Submission();
  const form = h("form", { class: "form import-form", novalidate: true, "aria-label": "Import from a URL" },
    url.wrapper, pipeline.fieldset, summary, h("div", { class: "form-actions" }, button), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    result.textContent = "";
    const value = url.control.value.trim();
    let message = "";
    if (!value) message = "Enter the URL of a video (http:// or https://).";
    else if (!URL.canParse?.(value) && !/^https?:\/\/\S+$/i.test(value)) message = "That is not a full URL; it must start with http:// or https://.";
    if (showLocalErrors(form, message ? [{ control: url.control, message }] : [])) return;
    const body = { url: value, pipeline: pipeline.values() };
    button.disabled = true;
    try {
      const answer = await api.importMedia(body, submission.keyFor(body));
      submission.done();
      clearErrors(form);
      url.control.value = "";
      result.replaceChildren("Importing ", h("a", { href: `#/media/${answer.media.id}` }, assetName(answer.media)), "…");
      announce(`Import started for ${assetName(answer.media)}.`);
      onCreated(answer.media);
    } catch (err) {
      showErrors(form, err);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

export function mediaView(root) {
  const cards = new Map();
  const cursors = [null];
  let nextCursor = null;
  let loading = null;
  let disposed = false;

  const grid = h("ul", { class: "media-grid", "aria-label": "Media assets, newest first" });
  const status = h("p", { class: "list-status", role: "status" }, "Loading media…");
  const problem = h("p", { class: "list-error", role: "alert", hidden: true });
  const emptySlot = h("div", { class: "empty-slot" });
  const stateFilter = field({
    label: "State", name: "media-state",
    control: h("select", {}, h("option", { value: "" }, "All states"), MEDIA_STATES.map((s) => h("option", { value: s }, s))),
  });
  const search = field({
    label: "Search titles", name: "media-search",
    control: h("input", { type: "search", maxlength: "200", autocomplete: "off", placeholder: "holiday" }),
  });
  let searchTimer = null;
  search.control.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      cursors.splice(1);
      load(true);
    }, 250);
  });
  const prev = h("button", { type: "button", class: "btn", onclick: () => page(-1) }, "← Newer");
  const next = h("button", { type: "button", class: "btn", onclick: () => page(1) }, "Older →");
  const pageLabel = h("span", { class: "page-label" });
  const pager = h("nav", { class: "pager", "aria-label": "Media pages", hidden: true }, prev, pageLabel, next);
  stateFilter.control.addEventListener("change", () => {
    cursors.splice(1);
    load(true);
  });

  const created = (asset) => {
    if (cursors.length !== 1 || cards.has(asset.id)) return;
    const card = new MediaCard(asset);
    cards.set(asset.id, card);
    grid.prepend(card.el);
    emptySlot.replaceChildren();
  };

  function page(step) {
    if (step > 0 && nextCursor) cursors.push(nextCursor);
    if (step < 0 && cursors.length > 1) cursors.pop();
    load(true).then(() => grid.querySelector("a")?.focus());
  }

  async function load(force = false) {
    if (disposed || (loading && !force)) return;
    loading?.abort();
    const controller = new AbortController();
    loading = controller;
    try {
      const answer = await api.listMedia({ state: stateFilter.control.value, q: search.control.value.trim(),
        limit: PAGE_SIZE, cursor: cursors[cursors.length - 1] }, controller.signal);
      if (controller.signal.aborted || disposed) return;
      show(answer);
      problem.hidden = true;
    } catch (err) {
      if (err.name === "AbortError" || disposed) return;
      if (!err.offline) {
        problem.textContent = `Could not load the media library: ${messageOf(err)}`;
        problem.hidden = false;
      }
    } finally {
      status.textContent = "";
      if (loading === controller) loading = null;
    }
  }

  function show(answer) {
    const nodes = answer.items.map((asset) => {
      let card = cards.get(asset.id);
      if (card) card.update(asset);
      else {
        card = new MediaCard(asset);
        cards.set(asset.id, card);
      }
      return card.el;
    });
    const visible = new Set(answer.items.map((a) => a.id));
    for (const [id, card] of cards) {
      if (!visible.has(id)) {
        card.stop();
        cards.delete(id);
      }
    }
    reconcile(grid, nodes);
    nextCursor = answer.next_cursor;
    prev.disabled = cursors.length === 1;
    next.disabled = !nextCursor;
    pager.hidden = cursors.length === 1 && !nextCursor;
    pageLabel.textContent = `Page ${cursors.length}`;
    const empty = answer.items.length === 0 && cursors.length === 1;
    if (!empty) emptySlot.replaceChildren();
    else if (search.control.value.trim() || stateFilter.control.value) {
      const what = [stateFilter.control.value, "assets"].filter(Boolean).join(" ");
      const titled = search.control.value.trim() ? ` titled with “${search.control.value.trim()}”` : "";
      emptySlot.replaceChildren(h("div", { class: "empty" }, h("p", {}, `No ${what}${titled}.`)));
    } else {
      emptySlot.replaceChildren(h("div", { class: "empty" },
        h("h3", {}, "No media yet"),
        h("p", {}, "Drop a video or audio file above (or choose one), or import one from its URL. Each becomes a "
          + "stream that plays here within seconds, with a thumbnail and downloads; from its page you can mask "
          + "regions, cut out or clip ranges, add captions and analyse it.")));
    }
  }

  const onReconnect = () => load(true);
  connection.addEventListener("reconnected", onReconnect);
  const timer = setInterval(() => load(), REFRESH_MS);

  const upload = uploadForm(created);
  const intake = h("section", { class: "card intake", "aria-labelledby": "upload-heading" }, upload,
    h("details", { class: "import-details" }, h("summary", {}, "Or import from a URL"), importForm(created)));
  dropTarget(intake, upload);

  root.replaceChildren(
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Media library")),
    intake,
    h("section", { class: "media-main", "aria-labelledby": "assets-heading" },
      h("div", { class: "section-head" }, h("h2", { id: "assets-heading" }, "Assets"),
        h("form", { class: "filters", role: "search", "aria-label": "Find media", onsubmit: (e) => e.preventDefault() },
          search.wrapper, stateFilter.wrapper)),
      status, problem, emptySlot, grid, pager));
  load(true);
  return () => {
    disposed = true;
    clearInterval(timer);
    clearTimeout(searchTimer);
    loading?.abort();
    connection.removeEventListener("reconnected", onReconnect);
    for (const card of cards.values()) card.stop();
  };
}

/** Let a file dropped anywhere on `area` go to the upload form (as if chosen, then Upload pressed). */
function dropTarget(area, form) {
  const input = form.querySelector('input[type="file"]');
  const over = (on) => area.classList.toggle("drop-over", on);
  area.addEventListener("dragover", (event) => {
    if (![...(event.dataTransfer?.types || [])].includes("Files")) return;
    event.preventDefault();
    over(true);
  });
  area.addEventListener("dragleave", (event) => {
    if (!area.contains(event.relatedTarget)) over(false);
  });
  area.addEventListener("drop", (event) => {
    if (!event.dataTransfer?.files?.length || !input) return;
    event.preventDefault();
    over(false);
    input.files = event.dataTransfer.files;
    form.requestSubmit();
  });
}
