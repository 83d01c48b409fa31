// The jobs dashboard: every job, live, filtered by state and kind; a form for a test job, folded away.

import { Submission, api } from "./api.js";
import { clearErrors, showErrors, showLocalErrors } from "./errors.js";
import { JobList } from "./joblist.js";
import { JOB_STATES, announce, field, formError, h, shortId, uniqueId } from "./ui.js";

const EXAMPLES = {
  "test.long_task": { seconds: 10 },
  "test.add": { x: 2, y: 3 },
  "test.sleep": { seconds: 5 },
};
const knownKinds = new Set(Object.keys(EXAMPLES));

function parseParams(text) {
  if (!text.trim()) return { params: {} };
  let params;
  try {
    params = JSON.parse(text);
  } catch (err) {
    return { error: `Not valid JSON (${err.message}). Example: {"seconds": 10}` };
  }
  if (params === null || typeof params !== "object" || Array.isArray(params)) {
    return { error: 'Params must be a JSON object, for example {"seconds": 10}.' };
  }
  return { params };
}

function optionalInteger(input) {
  const text = input.value.trim();
  return text === "" ? undefined : Number(text);
}

function submitForm(onSubmitted) {
  const datalistId = uniqueId("kinds");
  const datalist = h("datalist", { id: datalistId }, [...knownKinds].map((kind) => h("option", { value: kind })));
  const kind = field({
    label: "Kind", name: "kind", apiField: "kind",
    control: h("input", { type: "text", list: datalistId, autocomplete: "off", spellcheck: "false" }),
    hint: "A registered job kind, e.g. test.long_task.",
  });
  const params = field({
    label: "Params (JSON object)", name: "params", apiField: "params",
    control: h("textarea", { rows: "4", spellcheck: "false", class: "mono" }, "{}"),
  });
  const priority = field({
    label: "Priority (0–9, optional)", name: "priority", apiField: "priority",
    control: h("input", { type: "number", min: "0", max: "9", step: "1", inputmode: "numeric" }),
  });
  const attempts = field({
    label: "Max attempts (optional)", name: "max_attempts", apiField: "max_attempts",
    control: h("input", { type: "number", min: "1", max: "100", step: "1", inputmode: "numeric" }),
  });
  const button = h("button", { type: "submit", class: "btn btn-primary" }, "Submit job");
  const result = h("p", { class: "form-result", role: "status" });
  const summary = formError();
  const fill = (name) => {
    kind.control.value = name;
    params.control.value = JSON.stringify(EXAMPLES[name]);
    clearErrors(form);
  };
  const examples = h("div", { class: "examples", role: "group", "aria-label": "Examples" },
    h("span", { class: "hint" }, "Examples:"),
    Object.keys(EXAMPLES).map((name) => h("button", { type: "button", class: "btn btn-small", onclick: () => fill(name) },
      name)));
  const submission = new Submission();

  const form = h("form", { class: "form", novalidate: true, "aria-labelledby": "submit-heading" },
    examples, kind.wrapper, datalist, params.wrapper,
    h("div", { class: "field-row" }, priority.wrapper, attempts.wrapper),
    summary, h("div", { class: "form-actions" }, button), result);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    result.textContent = "";
    const local = [];
    const name = kind.control.value.trim();
    if (!name) local.push({ control: kind.control, message: "Enter a job kind, for example test.long_task." });
    const parsed = parseParams(params.control.value);
    if (parsed.error) local.push({ control: params.control, message: parsed.error });
    if (showLocalErrors(form, local)) return;
    const body = { kind: name, params: parsed.params };
    const p = optionalInteger(priority.control);
    const m = optionalInteger(attempts.control);
    if (p !== undefined) body.priority = p;
    if (m !== undefined) body.max_attempts = m;
    button.disabled = true;
    result.textContent = "Submitting…";
    try {
      const job = await api.submitJob(body, submission.keyFor(body));
      submission.done();
      clearErrors(form);
      knownKinds.add(job.kind);
      result.replaceChildren("Submitted ", h("a", { href: `#/jobs/${job.id}` }, `${job.kind} ${shortId(job.id)}`), ".");
      announce(`Submitted job ${job.kind} ${shortId(job.id)}.`);
      onSubmitted(job);
    } catch (err) {
      result.textContent = "";
      showErrors(form, err);
    } finally {
      button.disabled = false;
    }
  });
  return { form, fill, kind };
}

function filters(onChange) {
  const state = field({
    label: "State", name: "state",
    control: h("select", {}, h("option", { value: "" }, "All states"),
      JOB_STATES.map((s) => h("option", { value: s }, s))),
  });
  const kind = field({
    label: "Kind", name: "kind-filter",
    control: h("input", { type: "search", placeholder: "any kind", list: "kind-filter-list", autocomplete: "off" }),
  });
  const datalist = h("datalist", { id: "kind-filter-list" }, [...knownKinds].map((k) => h("option", { value: k })));
  let timer = null;
  state.control.addEventListener("change", onChange);
  kind.control.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(onChange, 300);
  });
  const clearButton = h("button", {
    type: "button", class: "btn btn-small",
    onclick: () => {
      state.control.value = "";
      kind.control.value = "";
      onChange();
    },
  }, "Clear filters");
  const el = h("form", { class: "filters", role: "search", "aria-label": "Filter jobs", onsubmit: (e) => e.preventDefault() },
    state.wrapper, kind.wrapper, datalist, h("div", { class: "filters-actions" }, clearButton));
  return {
    el,
    clear: () => clearButton.click(),
    values: () => ({ state: state.control.value, kind: kind.control.value.trim() }),
  };
}

export function jobsView(root) {
  let submit = null;
  let list = null;
  const filter = filters(() => list.reset());

  const details = h("details", { class: "card submit-details" },
    h("summary", { id: "submit-heading" }, "Submit a test job"));
  const empty = (filtered) => filtered
    ? h("div", { class: "empty" }, h("p", {}, "No jobs match these filters."),
      h("button", { type: "button", class: "btn", onclick: () => filter.clear() }, "Clear filters"))
    : h("div", { class: "empty" },
      h("h3", {}, "No jobs yet"),
      h("p", {}, "Jobs are the work the workers do for you, with live progress: every upload, import, mask, cut, "
        + "clip and analysis is one. Bring in a video in the ", h("a", { href: "#/" }, "Media library"),
        " and its jobs appear here."),
      h("p", {}, "To see a job run without media, open “Submit a test job” and submit test.long_task "
        + "(about 10 s of named stages)."),
      h("button", {
        type: "button", class: "btn",
        onclick: () => {
          details.open = true;
          submit.fill("test.long_task");
          submit.kind.control.focus();
        },
      }, "Fill in a test job"));

  list = new JobList({ query: filter.values, empty, label: "Jobs, newest first" });
  submit = submitForm((job) => {
    const { state, kind } = filter.values();
    if ((!state || state === job.state) && (!kind || kind === job.kind)) list.prepend(job);
  });

  details.append(submit.form);

  root.replaceChildren(
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Jobs")),
    details,
    h("section", { class: "jobs-main", "aria-labelledby": "jobs-heading" },
      h("h2", { id: "jobs-heading", class: "visually-hidden" }, "All jobs"),
      filter.el, list.el));
  list.start();
  return () => list.dispose();
}
