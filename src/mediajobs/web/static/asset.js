// One media asset: the HLS player with a timeline, facts, its jobs (live), derived copies, the operations
// (mask, remove frames, clip, analysis, reprocess), its captions and delete.

import { AnalysisPanel } from "./analysis.js";
import { Submission, api } from "./api.js";
import {
  ACTIVE, assetName, assetTitle, describeOperation, duration, pipelineFieldset, resolution, rungName, size,
} from "./assets.js";
import { CaptionsPanel } from "./captions.js";
import { ClipPanel } from "./clip.js";
import { connection } from "./connection.js";
import { CutPanel } from "./cut.js";
import { DownloadsCard } from "./downloads.js";
import { clearErrors, messageOf, showErrors, showLocalErrors } from "./errors.js";
import { JobList } from "./joblist.js";
import { trackedJob } from "./jobrow.js";
import { MaskPanel } from "./mask.js";
import { MediaCard } from "./media.js";
import { PlayableNote } from "./playable.js";
import { Player } from "./player.js";
import { posterAction } from "./poster.js";
import { StoryboardPreview } from "./storyboard.js";
import { Timeline } from "./timeline.js";
import {
  announce, field, formError, formatTime, h, reconcile, shortId, stateBadge, updateBadge,
} from "./ui.js";

const REFRESH_MS = 2000;
const DERIVED_SCAN = 200;

function facts(asset) {
  const p = asset.probe || {};
  const rows = [
    ["ID", h("code", {}, asset.id)],
    ["State", asset.state],
    ["Source", /^https?:\/\//i.test(asset.source?.url || "")
      ? h("a", { href: asset.source.url, rel: "noreferrer noopener", target: "_blank" }, asset.source.url)
      : asset.source?.url || asset.source?.type || ""],
    ["Derived from", asset.parent_id ? parentLink(asset.parent_id) : ""],
    ...operationRows(asset),
    ["Duration", duration(asset)],
    ["Resolution", resolution(asset)],
    ["Frame rate", p.fps ? `${Math.round(p.fps * 100) / 100} fps` : ""],
    ["Codecs", [p.video_codec, p.audio_codec].filter(Boolean).join(" / ")],
    ["File", [asset.original?.filename, size(asset), asset.original?.content_type].filter(Boolean).join(" · ")],
    ["Renditions", (asset.hls?.variants || [])
      .map((v) => `${rungName(v.width, v.height)}${v.ready === false ? " (encoding)" : ""}`).join(", ")],
    ["Created", formatTime(asset.created_at)],
    ["Updated", formatTime(asset.updated_at)],
  ].filter(([, value]) => value);
  const list = h("dl", { class: "facts" }, rows.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
  if (asset.error) {
    return [list, h("p", { class: "job-error", role: "alert" }, asset.error.message || String(asset.error), " ",
      h("code", { class: "error-code" }, asset.error.code || "error"))];
  }
  return [list];
}

function parentLink(parentId) {
  const link = h("a", { href: `#/media/${parentId}` }, shortId(parentId));
  const named = (title) => {
    link.textContent = title;
  };
  const title = assetTitle(parentId, named);
  if (title) named(title);
  return link;
}

/** The operation that made a derived asset (its regions, ranges, crop), one fact row with a line each. */
function operationRows(asset) {
  const made = describeOperation(asset.source);
  if (!made || !made.lines.length) return [];
  return [[made.what, h("ul", { class: "operation" }, made.lines.map((line) => h("li", {}, line)))]];
}

/** The page's heading with a Rename button that turns it into a small form (PATCH title). */
class TitleEditor {
  constructor(heading, onRenamed) {
    this.heading = heading;
    this.asset = null;
    this.button = h("button", { type: "button", class: "btn btn-small", onclick: () => this.open() }, "Rename");
    this.input = h("input", { type: "text", maxlength: "200", autocomplete: "off", spellcheck: "false" });
    const titleField = field({ label: "Title", name: "title", apiField: "title", control: this.input });
    this.form = h("form", { class: "form rename-form", novalidate: true, hidden: true }, titleField.wrapper,
      formError(), h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Save"),
        h("button", { type: "button", class: "btn", onclick: () => this.close() }, "Cancel")));
    this.form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const title = this.input.value.trim();
      if (showLocalErrors(this.form, title ? [] : [{ control: this.input, message: "Give the asset a name." }])) return;
      try {
        onRenamed(await api.renameMedia(this.asset.id, title));
        announce(`Renamed to ${title}.`);
        this.close();
      } catch (err) {
        showErrors(this.form, err);
      }
    });
  }

  update(asset) {
    this.asset = asset;
    this.button.hidden = asset.state === "deleting" || !this.form.hidden;
  }

  open() {
    clearErrors(this.form);
    this.input.value = this.asset.title || "";
    this.form.hidden = false;
    this.button.hidden = true;
    this.input.focus();
    this.input.select();
  }

  close() {
    this.form.hidden = true;
    this.button.hidden = false;
    this.heading.focus();
  }
}

function reprocessForm(asset, onJob) {
  const pipeline = pipelineFieldset("Rebuild");
  const button = h("button", { type: "submit", class: "btn" }, "Reprocess");
  const slot = h("div", { class: "op-job" });
  const summary = h("p", { class: "form-error", role: "alert", hidden: true });
  const submission = new Submission();
  const form = h("form", { class: "card form op", novalidate: true, "aria-labelledby": "reprocess-heading" },
    h("h2", { id: "reprocess-heading" }, "Reprocess"),
    h("p", { class: "hint" }, "Rebuild the stream, thumbnail, downloads and storyboard from the original file."),
    pipeline.fieldset, summary, h("div", { class: "form-actions" }, button), slot);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { pipeline: pipeline.values() };
    button.disabled = true;
    try {
      const answer = await api.operate(asset.id, "reprocess", body, submission.keyFor(body));
      submission.done();
      clearErrors(form);
      slot.replaceChildren(trackedJob(answer.job, { mediaId: asset.id }).el);
      announce("Reprocessing started.");
      onJob(answer.job);
    } catch (err) {
      showErrors(form, err);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function deleteDialog(asset, onConfirm) {
  const dialog = h("dialog", { class: "dialog", "aria-labelledby": "delete-title" },
    h("form", { method: "dialog" },
      h("h2", { id: "delete-title" }, "Delete this asset?"),
      h("p", {}, `“${assetName(asset)}” and every file made from it (stream, thumbnail, downloads, storyboard, images) will be removed, and its `
        + "unfinished jobs cancelled. Copies derived from it are kept. This cannot be undone."),
      h("div", { class: "form-actions" },
        h("button", { value: "cancel", class: "btn", autofocus: true }, "Keep it"),
        h("button", { value: "delete", class: "btn btn-danger" }, "Delete asset"))));
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "delete") onConfirm();
  });
  return dialog;
}

export function assetView(root, { id }) {
  let asset = null;
  let disposed = false;
  let workspace = null;
  const derivedIds = new Set();
  const derivedCards = new Map();
  const heading = h("h1", { tabindex: "-1" }, `Asset ${shortId(id)}`);
  const badge = stateBadge("…");
  const problem = h("p", { class: "list-error", role: "alert", hidden: true });
  const note = new PlayableNote();
  const deleteButton = h("button", { type: "button", class: "btn btn-danger", onclick: () => dialog?.showModal() }, "Delete…");
  // Enabled once the asset (and so its confirmation dialog) has loaded: an early click would do nothing.
  deleteButton.disabled = true;
  const infoBody = h("div");
  const stage = h("div", { class: "asset-stage" }, h("p", { class: "hint" }, "Loading…"));
  const ops = h("div", { class: "asset-ops" });
  const derivedGrid = h("ul", { class: "media-grid media-grid-small", "aria-label": "Derived assets" });
  const derivedEmpty = h("p", { class: "hint" }, "None yet. Masking, frame removal and clips make new assets that appear here.");
  const downloads = new DownloadsCard({ onJob: (job) => onJob(job) });
  const rename = new TitleEditor(heading, (renamed) => show(renamed));
  const layout = h("div", { class: "asset-layout" });
  const jobs = new JobList({ query: () => ({ media_id: id }), mediaId: id, pageSize: 10, label: "Jobs of this asset",
    empty: () => h("p", { class: "hint" }, "No jobs for this asset.") });
  let dialog = null;

  // A job started from this page: the asset's own jobs join the list at once, a new copy joins "Derived".
  const onJob = (job) => {
    if (job.media_id === id) jobs.prepend(job);
    else if (job.media_id) {
      derivedIds.add(job.media_id);
      loadDerived();
    }
  };

  function build(current) {
    const { width, height, duration: length } = current.probe || {};
    if (!width && !length) return false;
    const player = new Player({ width, height });
    const timeline = new Timeline({ duration: length, video: player.video });
    const previews = new StoryboardPreview(timeline);
    if (width && height) player.bar.append(posterAction({ asset: current, player, onDone: show }));
    const panels = [];
    if (width && height) panels.push(new MaskPanel({ asset: current, player, onJob }));
    panels.push(new CutPanel({ asset: current, player, timeline, onJob }));
    panels.push(new ClipPanel({ asset: current, player, timeline, onJob }));
    panels.push(new CaptionsPanel({ asset: current, player }));
    const analysis = new AnalysisPanel({ asset: current, player, timeline, onJob });
    stage.replaceChildren(player.el, timeline.el);
    ops.replaceChildren(...panels.map((p) => p.form), analysis.el, reprocessForm(current, onJob));
    analysis.latest();
    workspace = { player, panels, previews };
    return true;
  }

  function show(current) {
    const first = !asset;
    asset = current;
    heading.textContent = assetName(current);
    rename.update(current);
    document.title = `${assetName(current)} · mediajobs`;
    updateBadge(badge, current.state);
    if (note.update(current)) announce("This asset plays now; the rest of its stream is still being processed.");
    deleteButton.disabled = current.state === "deleting";
    infoBody.replaceChildren(...facts(current));
    if (first) {
      dialog = deleteDialog(current, remove);
      root.append(dialog);
    }
    if (!workspace && !build(current)) {
      stage.replaceChildren(h("p", { class: "player-empty" }, ACTIVE.has(current.state)
        ? `This asset is ${current.state}; the player and the operations appear once the file has been probed.`
        : "This asset has no probed media to show."));
    }
    if (workspace) {
      workspace.player.load(current.hls);
      workspace.previews.load(current.storyboard);
    }
    downloads.update(current);
  }

  async function load() {
    if (disposed) return;
    try {
      show(await api.getMedia(id));
      problem.hidden = true;
    } catch (err) {
      if (disposed || err.offline) return;
      if (err.status === 404) {
        gone();
        return;
      }
      problem.textContent = messageOf(err);
      problem.hidden = false;
    }
  }

  /** The asset is no more (deleted here, elsewhere, or never there): say so instead of a page that waits. */
  function gone() {
    stop();
    const was = asset ? `“${assetName(asset)}” was deleted` : "This asset does not exist: it was deleted, or the "
      + "address is wrong";
    heading.textContent = asset ? "Deleted asset" : "No such asset";
    document.title = `${heading.textContent} · mediajobs`;
    updateBadge(badge, "deleted");
    deleteButton.hidden = true;
    rename.button.hidden = true;
    rename.form.hidden = true;
    note.el.hidden = true;
    problem.hidden = true;
    workspace?.player.destroy();
    for (const panel of workspace?.panels || []) panel.dispose?.();
    workspace = null;
    layout.replaceChildren(h("div", { class: "empty gone", role: "status" },
      h("p", {}, `${was}. Its stream, files and jobs are gone; copies made from it are kept.`),
      h("p", {}, h("a", { href: "#/media" }, "Back to the media library"))));
  }

  async function loadDerived() {
    try {
      // parent_id narrows the list where the server supports it; the filter below keeps it right where not.
      const page = await api.listMedia({ parent_id: id, limit: DERIVED_SCAN });
      for (const item of page.items) if (item.parent_id === id) derivedIds.add(item.id);
      const items = page.items.filter((item) => derivedIds.has(item.id));
      const known = new Set(items.map((item) => item.id));
      for (const missing of [...derivedIds].filter((d) => !known.has(d))) {
        items.push(await api.getMedia(missing).catch(() => null));
      }
      const nodes = items.filter(Boolean).map((item) => {
        let card = derivedCards.get(item.id);
        if (card) card.update(item);
        else derivedCards.set(item.id, (card = new MediaCard(item)));
        return card.el;
      });
      reconcile(derivedGrid, nodes);
      derivedEmpty.hidden = nodes.length > 0;
    } catch {
      // The page's own problem line reports an unreachable or refusing server.
    }
  }

  async function remove() {
    deleteButton.disabled = true;
    try {
      await api.deleteMedia(id);
      announce(`Deleting ${assetName(asset)}.`);
      location.hash = "#/media";
    } catch (err) {
      problem.textContent = messageOf(err);
      problem.hidden = false;
      deleteButton.disabled = false;
    }
  }

  const tick = () => {
    load();
    loadDerived();
  };
  const timer = setInterval(tick, REFRESH_MS);
  connection.addEventListener("reconnected", tick);
  function stop() {
    clearInterval(timer);
    jobs.dispose();
    note.stop();
  }

  root.replaceChildren(
    h("p", { class: "crumbs" }, h("a", { href: "#/media" }, "← Media library")),
    h("div", { class: "page-head" }, heading, badge, h("div", { class: "page-actions" }, rename.button, deleteButton)),
    rename.form,
    note.el,
    problem,
    layout);
  // Player, then operations, then the rest: on a phone the drawing tools stay next to the picture.
  layout.replaceChildren(stage, ops,
    h("div", { class: "asset-info" },
      h("section", { class: "card", "aria-labelledby": "info-heading" }, h("h2", { id: "info-heading" }, "About"), infoBody),
      downloads.el,
      h("section", { class: "card", "aria-labelledby": "asset-jobs-heading" },
        h("h2", { id: "asset-jobs-heading" }, "Jobs"), jobs.el),
      h("section", { class: "card", "aria-labelledby": "derived-heading" },
        h("h2", { id: "derived-heading" }, "Derived assets"), derivedEmpty, derivedGrid)));
  jobs.start();
  tick();
  return () => {
    disposed = true;
    stop();
    connection.removeEventListener("reconnected", tick);
    workspace?.player.destroy();
    for (const panel of workspace?.panels || []) panel.dispose?.();
    for (const card of derivedCards.values()) card.stop();
    dialog?.remove();
  };
}
