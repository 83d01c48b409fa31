// "Upload a file": a resumable upload (tus, with the vendored tus-js-client) with progress, pause and resume.
// A dropped connection is retried by itself; after a reload, choosing the same file again continues it
// (tus-js-client remembers each file's upload URL in localStorage) instead of starting over.

import "./vendor/tus.min.js";
import { api, auth } from "./api.js";
import { assetName } from "./assets.js";
import { connection } from "./connection.js";
import { clearErrors, offlineError, problemFromBody, showErrors, showLocalErrors } from "./errors.js";
import { announce, field, formError, formatBytes, formatPercent, h, progressBar, setProgress } from "./ui.js";

const { Upload } = window.tus;
const ENDPOINT = "/api/v1/uploads";
// Waits between tries after a dropped connection; tus-js-client starts over at the first one after progress.
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000];

/** The problem an upload error stands for: the API's problem+json, or "offline" when no answer came. */
function problemOf(err) {
  const response = err?.originalResponse;
  if (!response) {
    connection.failed();
    return offlineError(err);
  }
  const status = response.getStatus();
  const text = response.getBody() || "";
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  const problem = problemFromBody(status, body, text);
  if (status === 401) auth.refused(problem);
  return problem;
}

/** Uploads this browser started and did not finish (tus-js-client's URL storage), for a hint after a reload. */
async function unfinished() {
  try {
    const storage = window.tus.defaultOptions.urlStorage;
    const found = await storage.findAllUploads();
    return found.filter((entry) => entry.uploadUrl && entry.metadata?.filename);
  } catch {
    return [];
  }
}

export function uploadForm(onCreated) {
  const file = field({
    label: "Video or audio file", name: "file", apiField: "file filename",
    control: h("input", { type: "file", accept: "video/*,audio/*,.mkv,.mov,.mp4,.webm,.m4a,.mp3,.wav" }),
    hint: "MP4, MOV, MKV, WebM, MPEG-TS, MP3, M4A, WAV, …",
  });
  // The largest upload the server takes (Tus-Max-Size), said before a byte is sent.
  let limit = null;
  api.uploadLimit().then((bytes) => {
    limit = bytes;
    if (bytes) file.wrapper.querySelector(".hint").textContent += ` Up to ${formatBytes(bytes)}.`;
  });
  const bar = progressBar("Upload progress");
  const progressText = h("span", { class: "upload-text" });
  const progress = h("div", { class: "upload-progress", hidden: true }, bar, progressText);
  const button = h("button", { type: "submit", class: "btn btn-primary" }, "Upload");
  const pause = h("button", { type: "button", class: "btn", hidden: true }, "Pause");
  const resume = h("button", { type: "button", class: "btn", hidden: true }, "Resume");
  const cancel = h("button", { type: "button", class: "btn", hidden: true }, "Cancel upload");
  const summary = formError();
  const pending = h("p", { class: "hint upload-pending", hidden: true });
  const result = h("p", { class: "form-result", role: "status" });
  const form = h("form", { class: "card form", novalidate: true, "aria-labelledby": "upload-heading" },
    h("h2", { id: "upload-heading" }, "Upload a file"), file.wrapper, pending, progress, summary,
    h("div", { class: "form-actions" }, button, pause, resume, cancel), result);
  let upload = null;
  let mediaId = null;

  const show = (loaded, total) => {
    const percent = total ? (100 * loaded) / total : 0;
    setProgress(bar, percent, `${formatPercent(percent)} uploaded`);
    progressText.textContent = `${formatBytes(loaded)} of ${formatBytes(total)} (${formatPercent(percent)})`;
  };
  const controls = (state) => {
    // idle | running | paused
    button.disabled = state !== "idle";
    pause.hidden = state !== "running";
    resume.hidden = state !== "paused";
    cancel.hidden = state === "idle";
  };
  const finish = () => {
    upload = null;
    mediaId = null;
    controls("idle");
    showPending();
  };

  async function showPending() {
    const entries = await unfinished();
    pending.hidden = entries.length === 0;
    pending.textContent = entries.length
      ? `Unfinished in this browser: ${entries.map((e) => e.metadata.filename).join(", ")}. `
        + "Choose the same file again to continue where it stopped."
      : "";
  }

  pause.addEventListener("click", () => {
    if (!upload) return;
    upload.abort(false); // the server keeps what it has; Resume (or a reload and the same file) continues
    controls("paused");
    result.textContent = "Paused. Resume continues from what the server has.";
  });
  resume.addEventListener("click", () => {
    if (!upload) return;
    result.textContent = "";
    controls("running");
    upload.start();
  });
  cancel.addEventListener("click", async () => {
    if (!upload) return;
    const current = upload;
    try {
      await current.abort(true); // terminate: the server removes the upload and its asset
    } catch (err) {
      showErrors(form, problemOf(err));
    }
    progress.hidden = true;
    result.textContent = "Upload cancelled.";
    finish();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    result.textContent = "";
    const chosen = file.control.files[0];
    let message = "";
    if (!chosen) message = "Choose a video or audio file to upload.";
    else if (chosen.size === 0) message = `${chosen.name} is empty (0 bytes); choose another file.`;
    else if (limit && chosen.size > limit) {
      message = `${chosen.name} is ${formatBytes(chosen.size)}; this server takes files up to ${formatBytes(limit)}.`;
    }
    if (showLocalErrors(form, message ? [{ control: file.control, message }] : [])) return;
    clearErrors(form);
    progress.hidden = false;
    show(0, chosen.size);
    controls("running");
    upload = new Upload(chosen, {
      endpoint: ENDPOINT,
      retryDelays: RETRY_DELAYS,
      metadata: { filename: chosen.name, filetype: chosen.type || "application/octet-stream" },
      headers: auth.headers(),
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      onAfterResponse(_req, res) {
        const id = res.getHeader("Mediajobs-Media-Id");
        if (id) mediaId = id;
        connection.succeeded();
      },
      onProgress: show,
      async onSuccess() {
        show(chosen.size, chosen.size);
        file.control.value = "";
        const id = mediaId;
        finish();
        try {
          const media = id ? await api.getMedia(id) : null;
          const name = media ? assetName(media) : chosen.name;
          result.replaceChildren("Uploaded ", h("a", { href: `#/media/${id}` }, name), "; it is being processed.");
          announce(`Uploaded ${name}.`);
          if (media) onCreated(media);
        } catch (err) {
          showErrors(form, err);
        }
      },
      onError(err) {
        progress.hidden = true;
        showErrors(form, problemOf(err));
        finish();
      },
    });
    const previous = await upload.findPreviousUploads();
    if (previous.length) {
      upload.resumeFromPreviousUpload(previous[0]);
      result.textContent = `Continuing the earlier upload of ${chosen.name}.`;
    }
    upload.start();
  });
  showPending();
  return form;
}
