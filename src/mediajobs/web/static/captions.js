// Captions of an asset: its tracks (each can be removed) and a form that adds one from an SRT or WebVTT file.
// The player's captions menu lists the same tracks once the stream is reloaded with the new master.

import { Submission, api } from "./api.js";
import { clearErrors, messageOf, showErrors, showLocalErrors } from "./errors.js";
import { announce, field, formError, h } from "./ui.js";

const MAX_BYTES = 2 * 1024 * 1024;
const LANGUAGE = /^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,4}$/;

export class CaptionsPanel {
  constructor({ asset, player }) {
    this.asset = asset;
    this.player = player;
    this.tracks = asset.captions || [];
    this.submission = new Submission();

    this.file = field({ label: "Caption file (SRT or WebVTT)", name: "captions-file", apiField: "body",
      control: h("input", { type: "file", accept: ".srt,.vtt,text/vtt,application/x-subrip" }) });
    this.language = field({ label: "Language", name: "captions-language", apiField: "language",
      hint: "A language tag such as en, fr or pt-BR.",
      control: h("input", { type: "text", autocomplete: "off", spellcheck: false, maxlength: "35" }) });
    this.label = field({ label: "Label", name: "captions-label", apiField: "label",
      hint: "What viewers see in the captions menu, e.g. English (optional).",
      control: h("input", { type: "text", autocomplete: "off", maxlength: "100" }) });
    this.list = h("ul", { class: "captions-list", "aria-label": "Caption tracks" });
    this.problem = h("p", { class: "list-error", role: "alert", hidden: true });
    this.summary = formError();
    this.submit = h("button", { type: "submit", class: "btn btn-primary" }, "Add captions");
    this.form = h("form", { class: "card form op", novalidate: true, "aria-labelledby": "captions-heading" },
      h("h2", { id: "captions-heading" }, "Captions"),
      this.list, this.problem,
      h("p", { class: "hint" }, "Add subtitles from an SRT or WebVTT file (at most 2 MB). Players choose them in "
        + "their captions menu; the stream itself is not encoded again."),
      this.file.wrapper, this.language.wrapper, this.label.wrapper, this.summary,
      h("div", { class: "form-actions" }, this.submit));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.render();
  }

  render() {
    if (!this.tracks.length) {
      this.list.replaceChildren(h("li", { class: "hint" }, "No captions yet."));
      return;
    }
    this.list.replaceChildren(...this.tracks.map((track) => h("li", { class: "caption-track", dataset: { captionId: track.id } },
      // Names and languages come from users: text nodes only.
      h("span", { class: "caption-name" }, track.label), " ",
      h("span", { class: "hint" }, `${track.language} · ${track.cues} cue${track.cues === 1 ? "" : "s"}`), " ",
      h("a", { href: track.url, target: "_blank", rel: "noopener" }, "WebVTT"), " ",
      h("button", { type: "button", class: "btn btn-small btn-danger", onclick: () => this.remove(track) },
        `Remove ${track.label}`))));
  }

  validate() {
    const problems = [];
    const file = this.file.control.files[0];
    if (!file) problems.push({ control: this.file.control, message: "Choose an SRT or WebVTT file." });
    else if (file.size > MAX_BYTES) problems.push({ control: this.file.control, message: "The file is over 2 MB." });
    if (!LANGUAGE.test(this.language.control.value.trim())) {
      problems.push({ control: this.language.control, message: "Enter a language tag such as en or pt-BR." });
    }
    return problems;
  }

  async send() {
    if (showLocalErrors(this.form, this.validate())) return;
    const file = this.file.control.files[0];
    const fields = { language: this.language.control.value.trim(), label: this.label.control.value.trim() };
    const key = this.submission.keyFor({ ...fields, name: file.name, size: file.size, modified: file.lastModified });
    this.submit.disabled = true;
    try {
      const track = await api.addCaptions(this.asset.id, file, fields, key);
      this.submission.done();
      clearErrors(this.form);
      this.form.reset();
      this.tracks = [...this.tracks.filter((t) => t.id !== track.id), track];
      this.render();
      announce(`Captions “${track.label}” added.`);
      await this.player.reload();
    } catch (err) {
      showErrors(this.form, err);
    } finally {
      this.submit.disabled = false;
    }
  }

  async remove(track) {
    this.problem.hidden = true;
    try {
      await api.deleteCaption(this.asset.id, track.id);
      this.tracks = this.tracks.filter((t) => t.id !== track.id);
      this.render();
      announce(`Captions “${track.label}” removed.`);
      await this.player.reload();
    } catch (err) {
      this.problem.textContent = messageOf(err);
      this.problem.hidden = false;
    }
  }
}
