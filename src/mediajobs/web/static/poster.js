// "Use this frame as poster": the frame the player shows now becomes the asset's thumbnail.

import { api } from "./api.js";
import { messageOf } from "./errors.js";
import { announce, formatClock, h } from "./ui.js";

export function posterAction({ asset, player, onDone }) {
  const status = h("span", { class: "hint poster-status", role: "status" });
  const button = h("button", { type: "button", class: "btn" }, "Use this frame as poster");
  button.addEventListener("click", async () => {
    const time = player.video.currentTime || 0;
    button.disabled = true;
    status.textContent = `Making the poster from ${formatClock(time)}…`;
    try {
      const answer = await api.setPoster(asset.id, time);
      status.textContent = answer.thumbnail_url ? `Poster set to the frame at ${formatClock(time)}.` : "Poster is being made.";
      announce(status.textContent);
      onDone?.(answer);
    } catch (err) {
      status.textContent = messageOf(err);
    } finally {
      button.disabled = false;
    }
  });
  return h("div", { class: "poster-action" }, button, status);
}
