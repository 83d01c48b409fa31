"""Helpers for the outputs tests (downloads, storyboards, images): waiting for an asset's outputs (the clips
whose frames carry their index are in tests/toolkit/indexclips.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from mediajobs.testing.servers import wait_for
from tests.media_api.helpers import JSON, get_media, upload, wait_media
from tests.stacks import MediaStack


def outputs_ready(
    api: httpx.Client, media_id: str, *, storyboard: bool = True, timeout_s: float = 90
) -> JSON:
    """The asset once every download it lists is ready and (unless told not to) its storyboard is made."""

    def check() -> JSON | None:
        media = get_media(api, media_id)
        if media["state"] != "ready" or not all(d["ready"] for d in media["downloads"]):
            return None
        return media if media["storyboard"] or not storyboard else None

    return wait_for(check, timeout_s=timeout_s, message=f"the outputs of {media_id}")  # type: ignore[return-value]


def ready_with_outputs(
    stack: MediaStack, path: Path, *, storyboard: bool = True, filename: str | None = None, **fields: Any
) -> JSON:
    """Upload `path` once per stack (by file name) and wait for its outputs."""
    name = filename or path.name
    key = f"outputs-{name}"
    if key not in stack.cache:
        with stack.client() as api:
            created = upload(api, path, filename=name, **fields)
            media = wait_media(api, created["media"]["id"], "ready", "failed", timeout_s=120)
            assert media["state"] == "ready", media
            stack.cache[key] = outputs_ready(api, media["id"], storyboard=storyboard)
    media: JSON = stack.cache[key]
    return media


def by_type(media: JSON, kind: str) -> list[JSON]:
    return [d for d in media["downloads"] if d["type"] == kind]
