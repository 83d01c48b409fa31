// The one place API failures become words on the page: RFC 9457 problems, field errors, network failures.

export class ApiError extends Error {
  /** status 0 means the server could not be reached at all. */
  constructor({ status = 0, title = "", detail = "", errors = [], type = "about:blank" } = {}) {
    super(detail || title || `request failed (${status})`);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.errors = Array.isArray(errors) ? errors : [];
    this.type = type;
  }

  get offline() {
    return this.status === 0;
  }
}

/** Build an ApiError from a non-2xx answer, whatever its body is. */
export async function problemFrom(response) {
  let body = null;
  const text = await response.text().catch(() => "");
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  return problemFromBody(response.status, body, text);
}

export function problemFromBody(status, body, text = "") {
  if (body && typeof body === "object" && (body.detail || body.title)) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    return new ApiError({ status, title: body.title || "", detail, errors: body.errors, type: body.type });
  }
  const snippet = (text || "").trim().slice(0, 200);
  return new ApiError({ status, detail: snippet || `the server answered ${status} with no explanation` });
}

export function offlineError(cause) {
  const why = cause && cause.message ? ` (${cause.message})` : "";
  return new ApiError({ status: 0, detail: `cannot reach the server${why}; it may be restarting` });
}

/** A sentence for a person, e.g. for a status line or an alert. */
export function messageOf(err) {
  if (err instanceof ApiError) return err.detail || err.title || err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

// --- forms -------------------------------------------------------------------------------------------

/** Remove every message that showErrors() put in `form`. */
export function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error")) {
    el.textContent = "";
    el.hidden = true;
  }
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const summary = form.querySelector(".form-error");
  if (summary) {
    summary.textContent = "";
    summary.hidden = true;
  }
}

/** The form control whose data-field is the longest prefix of the API's field path ("params.seconds" -> "params"). */
function controlFor(form, field) {
  let best = null;
  let bestLength = -1;
  for (const control of form.querySelectorAll("[data-field]")) {
    for (const name of control.dataset.field.split(/\s+/)) {
      const matches = field === name || field.startsWith(`${name}.`) || field.startsWith(`${name}[`);
      if (matches && name.length > bestLength) {
        best = control;
        bestLength = name.length;
      }
    }
  }
  return best;
}

function fieldMessage(control, field, message) {
  const own = control.dataset.field.split(/\s+/).includes(field);
  return own ? message : `${field}: ${message}`;
}

/**
 * Show an error in a form: each 422 field error next to its control, everything else (and the problem's
 * detail when no field matched) in the form's summary. Focuses the first bad control.
 */
export function showErrors(form, err) {
  clearErrors(form);
  const perControl = new Map();
  const unplaced = [];
  for (const e of (err instanceof ApiError ? err.errors : [])) {
    const field = e.field || (Array.isArray(e.loc) ? e.loc.join(".") : "");
    const control = field ? controlFor(form, field) : null;
    if (control) {
      const list = perControl.get(control) || [];
      list.push(fieldMessage(control, field, e.message || "invalid value"));
      perControl.set(control, list);
    } else {
      unplaced.push(field ? `${field}: ${e.message}` : e.message);
    }
  }
  for (const [control, messages] of perControl) setFieldError(form, control, messages.join("; "));
  if (perControl.size === 0 || unplaced.length) {
    const summary = form.querySelector(".form-error");
    const text = perControl.size === 0 ? messageOf(err) : unplaced.join("; ");
    if (summary) {
      summary.textContent = text;
      summary.hidden = false;
    }
  }
  const first = perControl.keys().next().value;
  if (first) first.focus();
}

/** Put `message` in the error slot next to `control` (id "<control id>-error") and mark it invalid. */
export function setFieldError(form, control, message) {
  const slot = document.getElementById(`${control.id}-error`);
  control.setAttribute("aria-invalid", "true");
  if (slot) {
    slot.textContent = message;
    slot.hidden = false;
  }
}

/** Client-side checks before the request: [{control, message}] -> shown like server field errors. */
export function showLocalErrors(form, problems) {
  clearErrors(form);
  for (const { control, message } of problems) setFieldError(form, control, message);
  if (problems.length) problems[0].control.focus();
  return problems.length > 0;
}
