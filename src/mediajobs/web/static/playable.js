// "Playable, still processing": an asset whose stream already plays (its media JSON has `playable_at`) while
// the rest of its ladder is still being encoded (`state` stays `processing`), with the progress of that work.

import { api } from "./api.js";
import { follow } from "./live.js";
import { formatPercent, h, progressBar, setProgress } from "./ui.js";

export const PLAYABLE_LABEL = "Playable, still processing";

export const playableEarly = (asset) => asset?.state === "processing" && Boolean(asset.playable_at);

/** The job whose progress speaks for the asset: its latest, or the job that latest one was fanned out from
 * (a chunk of a transcode reports on its own part only). */
export async function rootJobId(jobId) {
  let id = jobId;
  for (let depth = 0; id && depth < 4; depth += 1) {
    const job = await api.getJob(id).catch(() => null);
    if (!job?.parent_id) break;
    id = job.parent_id;
  }
  return id;
}

/** Follow the root of the asset's latest job; `listener(job)` on every change. Returns the unsubscribe. */
export function followAssetJob(jobId, listener) {
  let unfollow = null;
  let stopped = false;
  rootJobId(jobId).then((id) => {
    if (!stopped && id) unfollow = follow(id, listener);
  });
  return () => {
    stopped = true;
    unfollow?.();
  };
}

/** The asset page's note: the label, a progress bar and the stage, shown only while playable early. */
export class PlayableNote {
  constructor() {
    this.bar = progressBar("Processing progress");
    this.stage = h("span", { class: "playable-stage" });
    this.el = h("div", { class: "playable-note", hidden: true },
      h("strong", { class: "playable-label" }, PLAYABLE_LABEL), this.bar, this.stage);
    this.followed = null;
    this.unfollow = null;
  }

  /** Show or hide for this state of the asset; true when it has just become playable early. */
  update(asset) {
    const early = playableEarly(asset);
    const appeared = early && this.el.hidden;
    this.el.hidden = !early;
    const jobId = early ? asset.jobs?.[asset.jobs.length - 1] || null : null;
    if (jobId !== this.followed) {
      this.stop();
      this.followed = jobId;
      if (jobId) {
        this.unfollow = followAssetJob(jobId, (job) => {
          if (!job) return;
          const text = `${formatPercent(job.progress)} ${job.stage || job.state}`;
          setProgress(this.bar, job.progress, text);
          this.stage.textContent = text;
        });
      }
    }
    return appeared;
  }

  stop() {
    this.unfollow?.();
    this.unfollow = null;
    this.followed = null;
  }
}
