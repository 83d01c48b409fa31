// One job in full: params, timings, attempts, result or error, with live progress and Cancel / Retry.

import { api } from "./api.js";
import { assetTitle } from "./assets.js";
import { connection } from "./connection.js";
import { messageOf } from "./errors.js";
import { JobActions, canRetry, etaText } from "./jobrow.js";
import { follow } from "./live.js";
import {
  TERMINAL, formatPercent, formatSeconds, formatTime, h, prettyJson, progressBar, setProgress, shortId, stateBadge,
  updateBadge,
} from "./ui.js";

function seconds(from, to) {
  if (!from) return "";
  const end = to ? new Date(to) : new Date();
  return formatSeconds((end - new Date(from)) / 1000);
}

function row(term, ...value) {
  return [h("dt", {}, term), h("dd", {}, ...value)];
}

export function jobDetailView(root, { id }) {
  let job = null;
  let unfollow = null;
  let disposed = false;
  const heading = h("h1", { tabindex: "-1" }, `Job ${shortId(id)}`);
  const badge = stateBadge("…");
  const bar = progressBar("Job progress");
  const percent = h("span", { class: "job-percent" });
  const stage = h("p", { class: "job-stage" });
  const facts = h("dl", { class: "facts" });
  const params = h("pre", { class: "json", tabindex: "0", "aria-label": "Params JSON" });
  const outcome = h("section", { class: "card outcome", "aria-labelledby": "outcome-heading" });
  const problem = h("p", { class: "list-error", role: "alert", hidden: true });
  const actions = new JobActions((answer) => show(answer));
  const live = h("div", { class: "job-live", "aria-live": "polite" }, badge);
  const body = h("div", { class: "job-detail", hidden: true },
    h("section", { class: "card" }, h("div", { class: "job-head" }, live),
      h("div", { class: "job-progress" }, bar, percent), stage, actions.el),
    h("div", { class: "detail-columns" },
      h("section", { class: "card", "aria-labelledby": "facts-heading" },
        h("h2", { id: "facts-heading" }, "Details"), facts),
      h("div", {},
        h("section", { class: "card", "aria-labelledby": "params-heading" },
          h("h2", { id: "params-heading" }, "Params"), params),
        outcome)));

  function show(next) {
    job = next;
    heading.textContent = `Job ${job.kind} ${shortId(job.id)}`;
    document.title = `${job.kind} ${job.state} · mediajobs`;
    updateBadge(badge, job.state);
    setProgress(bar, job.progress, `${formatPercent(job.progress)}${job.stage ? `, ${job.stage}` : ""}`);
    percent.textContent = formatPercent(job.progress);
    stage.textContent = [job.stage, etaText(job)].filter(Boolean).join(" — ");
    actions.update(job);
    const media = job.media_id ? h("a", { href: `#/media/${job.media_id}` }, job.media_id) : "none";
    if (job.media_id) {
      const named = (title) => {
        media.textContent = title;
        media.title = job.media_id;
      };
      const title = assetTitle(job.media_id, named);
      if (title) named(title);
    }
    facts.replaceChildren(
      ...row("ID", h("code", {}, job.id)),
      ...row("Kind", job.kind),
      ...row("State", job.state + (job.cancel_requested && !TERMINAL.has(job.state) ? " (cancel requested)" : "")),
      ...row("Attempt", `${job.attempt} of ${job.max_attempts}`),
      ...row("Queue / priority", `${job.queue} / ${job.priority}`),
      ...row("Media asset", media),
      ...row("Created", formatTime(job.created_at)),
      ...row("Started", job.started_at ? formatTime(job.started_at) : "not yet"),
      ...row("Finished", job.finished_at ? formatTime(job.finished_at) : "not yet"),
      ...row("Waited in queue", seconds(job.created_at, job.started_at || (TERMINAL.has(job.state) ? job.finished_at : null))),
      ...row("Ran for", job.started_at ? seconds(job.started_at, job.finished_at) : ""),
      ...row("Last update", formatTime(job.updated_at)),
    );
    params.textContent = prettyJson(job.params);
    if (job.error) {
      outcome.replaceChildren(h("h2", { id: "outcome-heading" }, "Error"),
        h("p", { class: "job-error" }, job.error.message, " ", h("code", { class: "error-code" }, job.error.code)),
        canRetry({ ...job, state: "failed" }) ? null
          : h("p", { class: "hint" }, "Running it again would fail the same way: the input is the problem."));
    } else if (job.state === "succeeded") {
      outcome.replaceChildren(h("h2", { id: "outcome-heading" }, "Result"),
        h("pre", { class: "json result", tabindex: "0", "aria-label": "Result JSON" }, prettyJson(job.result)));
    } else {
      outcome.replaceChildren(h("h2", { id: "outcome-heading" }, "Result"),
        h("p", { class: "hint" }, TERMINAL.has(job.state) ? "No result." : "The result appears here when the job succeeds."));
    }
    if (!TERMINAL.has(job.state) && !unfollow) startFollowing();
  }

  function startFollowing() {
    unfollow = follow(id, (update, err) => {
      if (disposed) return;
      if (update) show(update);
      if (TERMINAL.has(update?.state) || err) {
        unfollow?.();
        unfollow = null;
      }
      if (err) fail(err);
    });
  }

  function fail(err) {
    problem.textContent = err.status === 404 ? `No job ${id}: ${messageOf(err)}` : messageOf(err);
    problem.hidden = false;
  }

  async function load() {
    try {
      const fresh = await api.getJob(id);
      if (disposed) return;
      problem.hidden = true;
      body.hidden = false;
      if (!job || new Date(fresh.updated_at) >= new Date(job.updated_at)) show(fresh);
    } catch (err) {
      if (!disposed && !err.offline) fail(err);
    }
  }

  const onReconnect = () => load();
  connection.addEventListener("reconnected", onReconnect);
  // Timings such as "ran for" tick even when nothing else changes.
  const clock = setInterval(() => job && !TERMINAL.has(job.state) && show(job), 1000);

  root.replaceChildren(
    h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "← All jobs")),
    h("div", { class: "page-head" }, heading), problem, body);
  load();
  return () => {
    disposed = true;
    clearInterval(clock);
    connection.removeEventListener("reconnected", onReconnect);
    unfollow?.();
  };
}
