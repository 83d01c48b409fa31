// The page: a hash router over the views, the API key prompt, and the connection banners.

import { auth } from "./api.js";
import { assetView } from "./asset.js";
import { connection } from "./connection.js";
import { showLocalErrors } from "./errors.js";
import { jobDetailView } from "./jobdetail.js";
import { jobsView } from "./jobs.js";
import { mediaView } from "./media.js";
import { h } from "./ui.js";

// The media library is the first page: what people come for. The jobs dashboard is one click away.
const ROUTES = [
  [/^#?\/?$/, mediaView, "media", "Media library"],
  [/^#\/jobs\/?$/, jobsView, "jobs", "Jobs"],
  [/^#\/jobs\/([^/?#]+)$/, jobDetailView, "jobs", "Job"],
  [/^#\/media\/?$/, mediaView, "media", "Media library"],
  [/^#\/media\/([^/?#]+)$/, assetView, "media", "Asset"],
];

const main = document.getElementById("main");
let dispose = null;
let rendered = false;

function notFound(root) {
  root.replaceChildren(h("h1", { tabindex: "-1" }, "Nothing here"),
    h("p", {}, "This address is not a page of this app. Go to the ", h("a", { href: "#/" }, "Media library"),
      " or ", h("a", { href: "#/jobs" }, "Jobs"), "."));
  return null;
}

function route() {
  const hash = location.hash;
  if (hash && !hash.startsWith("#/")) return;  // an in-page anchor such as the skip link
  const match = ROUTES.map(([pattern, view, section, title]) => ({ m: hash.match(pattern), view, section, title }))
    .find((r) => r.m);
  dispose?.();
  dispose = null;
  main.replaceChildren();
  document.title = `${match ? match.title : "Not found"} · mediajobs`;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (match && link.dataset.nav === match.section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const id = match?.m[1] ? decodeURIComponent(match.m[1]) : undefined;
  dispose = match ? match.view(main, { id }) : notFound(main);
  if (rendered) {
    main.querySelector("h1")?.focus({ preventScroll: false });
    window.scrollTo(0, 0);
  }
  rendered = true;
}

// --- API key --------------------------------------------------------------------------------------------

const panel = document.getElementById("auth");
const form = document.getElementById("auth-form");
const input = document.getElementById("api-key");
const detail = document.getElementById("auth-detail");
const keyButton = document.getElementById("key-button");

function showAuth(open, message = "") {
  panel.hidden = !open;
  keyButton.hidden = !auth.key && !open;
  keyButton.setAttribute("aria-expanded", String(open));
  if (message) detail.textContent = message;
  if (open) input.focus();
}

auth.addEventListener("unauthorized", (event) => {
  if (!panel.hidden) {
    detail.textContent = event.detail.detail;
    return;
  }
  showAuth(true, event.detail.detail);
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = input.value.trim();
  if (showLocalErrors(form, key ? [] : [{ control: input, message: "Paste an API key to continue." }])) return;
  auth.set(key);
  input.value = "";
  showAuth(false);
  route();
});

document.getElementById("auth-forget").addEventListener("click", () => {
  auth.clear();
  detail.textContent = "The saved key is forgotten.";
  keyButton.hidden = true;
  route();
});

keyButton.addEventListener("click", () => showAuth(panel.hidden, auth.key ? "A key is saved in this browser; paste another to replace it." : ""));
keyButton.hidden = !auth.key;

// --- start ----------------------------------------------------------------------------------------------

connection.mount({ banner: document.getElementById("offline"), ready: document.getElementById("notready") });
window.addEventListener("hashchange", route);
route();
