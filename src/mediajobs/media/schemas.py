"""The media JSON of the public API: one model makes it (routes, webhooks) and documents it (OpenAPI).

A new field of the media JSON is declared on `MediaPublic`, and `MediaPublic.of` says where its value comes
from; the routes, the webhook payloads and the OpenAPI description follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from mediajobs.db.models import Media, MediaCaption
from mediajobs.jobs.schemas import JobError
from mediajobs.media import downloads, storyboards, titles
from mediajobs.media.states import UPLOADING


class MediaOriginal(BaseModel):
    size: int
    content_type: str
    filename: str | None


class MediaProbe(BaseModel):
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    size: int | None = None


class HlsVariant(BaseModel):
    height: int | None
    width: int | None = None
    bandwidth: int | None
    ready: bool = Field(description="whether this rendition plays to the end yet")
    url: str


class MediaHls(BaseModel):
    master_url: str
    variants: list[HlsVariant]


class MediaUpload(BaseModel):
    """How far the resumable upload of an `uploading` asset has come."""

    url: str = Field(description="the tus upload URL (HEAD, PATCH, DELETE)")
    offset: int = Field(description="bytes stored so far")
    length: int = Field(description="bytes the whole file has (its Upload-Length)")
    progress: float = Field(description="offset as a percentage of length, 0-100")
    expires_at: str = Field(description="when it is removed unless more bytes arrive (ISO 8601 UTC)")


@dataclass(frozen=True)
class FileUrls:
    """The URLs of an asset's stored files on one API; `token` (a playback token) opens them without a key."""

    base_url: str
    media_id: str
    token: str | None = None

    def of(self, path: str) -> str:
        url = f"{self.base_url.rstrip('/')}/api/v1/media/{self.media_id}/files/{path}"
        return f"{url}?token={self.token}" if self.token else url


class CaptionPublic(BaseModel):
    """A caption track: its WebVTT file and how many cues it holds."""

    id: str
    language: str = Field(description="BCP 47 language tag (en, pt-BR)")
    label: str = Field(description="the name players show in their captions menu")
    url: str = Field(description="the WebVTT file (with a playback token when auth is on)")
    cues: int

    @classmethod
    def of(cls, caption: MediaCaption, urls: FileUrls) -> CaptionPublic:
        return cls(
            id=caption.id,
            language=caption.language,
            label=caption.label,
            url=urls.of(caption_path(caption.id)),
            cues=caption.cues,
        )


def caption_path(caption_id: str) -> str:
    """Where a caption track's WebVTT file is stored, under its asset's prefix."""
    return f"captions/{caption_id}.vtt"


class MediaDownload(BaseModel):
    """A file of the asset to download or play as it is (`?download=1` answers it as an attachment)."""

    type: str = Field(description='"original", "mp4" (a rung of the ladder, remuxed) or "audio" (M4A)')
    height: int | None = Field(description="the picture's height in pixels; null for the audio")
    content_type: str | None
    size: int | None = Field(description="bytes; null until ready")
    url: str | None = Field(description="null until ready")
    ready: bool


class MediaStoryboard(BaseModel):
    """Timeline previews: a WebVTT whose cues name tiles (`sheet.jpg#xywh=x,y,w,h`) of JPEG sprite sheets."""

    vtt_url: str
    images: list[str] = Field(description="the sprite sheets, in order")
    tile_width: int
    tile_height: int
    interval_s: float = Field(description="seconds between tiles; cue k starts at k * interval_s")
    count: int = Field(description="how many tiles (and cues)")


class MediaPublic(BaseModel):
    """A media asset: a source file and everything made from it."""

    id: str
    title: str = Field(
        description="what people call it: the file name without its extension, the page title of an import, "
        "or what an operation made (plain text, at most 200 characters; PATCH changes it)"
    )
    state: str = Field(description="pending, uploading, importing, processing, ready, failed or deleting")
    source: dict[str, Any] = Field(description='where it came from: {"type": "url" | "upload", ...}')
    parent_id: str | None = Field(description="the asset a mask or frame removal was made from")
    original: MediaOriginal | None
    probe: MediaProbe | None
    hls: MediaHls | None
    thumbnail_url: str | None
    error: JobError | None
    upload: MediaUpload | None = Field(
        default=None, description="while `state` is uploading: how far its resumable upload has come"
    )
    playable_at: str | None = Field(description="when the master URL first played (ISO 8601 UTC)")
    jobs: list[str] = Field(description="ids of the jobs that worked on this asset, oldest first")
    pipeline: list[str] | None
    thumbnail_error: JobError | None = None
    captions: list[CaptionPublic] = Field(default_factory=list, description="caption tracks, oldest first")
    downloads: list[MediaDownload] = Field(
        default_factory=list, description="the original, MP4s of the ladder's rungs, the audio as M4A"
    )
    storyboard: MediaStoryboard | None = Field(default=None, description="timeline previews, once made")
    created_at: str
    updated_at: str

    @classmethod
    def of(
        cls,
        media: Media,
        *,
        jobs: list[str],
        urls: FileUrls,
        captions: Sequence[MediaCaption] = (),
        upload: MediaUpload | None = None,
    ) -> MediaPublic:
        """The JSON of an asset record: its stored paths become `urls`, `jobs` are its job ids, `upload` its
        resumable upload's progress (shown while it is `uploading`)."""
        thumbnail_error = (media.extra or {}).get("thumbnail_error")
        return cls(
            id=media.id,
            title=media.title or titles.UNTITLED,
            state=media.state,
            source=media.source,
            parent_id=media.parent_id,
            # The storage key stays inside: MediaOriginal has no field for it.
            original=MediaOriginal.model_validate(media.original) if media.original else None,
            probe=MediaProbe.model_validate(media.probe) if media.probe else None,
            hls=_hls(media.hls, urls),
            thumbnail_url=urls.of(media.thumbnail) if media.thumbnail else None,
            error=JobError.model_validate(media.error) if media.error else None,
            upload=upload if media.state == UPLOADING else None,
            playable_at=_stamp(media.playable_at) if media.playable_at else None,
            jobs=jobs,
            pipeline=media.pipeline,
            thumbnail_error=JobError.model_validate(thumbnail_error) if thumbnail_error else None,
            captions=[CaptionPublic.of(c, urls) for c in captions],
            downloads=[MediaDownload.model_validate(d) for d in downloads.listed(media, urls.of)],
            storyboard=MediaStoryboard.model_validate(board)
            if (board := storyboards.listed(media, urls.of))
            else None,
            created_at=_stamp(media.created_at),
            updated_at=_stamp(media.updated_at),
        )


def _storyboard(media: Media, urls: FileUrls) -> MediaStoryboard | None:
    board = storyboards.listed(media, urls.of)
    return MediaStoryboard.model_validate(board) if board else None


def _hls(record: dict[str, Any] | None, urls: FileUrls) -> MediaHls | None:
    if not record:
        return None
    root = record["path"]
    variants = [
        HlsVariant(
            height=v.get("height"),
            width=v.get("width"),
            bandwidth=v.get("bandwidth"),
            # Versions made before fast start list only finished variants.
            ready=v.get("ready", True),
            url=urls.of(f"{root}/{v['path']}"),
        )
        for v in record.get("variants", [])
    ]
    return MediaHls(master_url=urls.of(f"{root}/{record['master']}"), variants=variants)


def _stamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def public(
    media: Media,
    *,
    jobs: list[str],
    base_url: str,
    token: str | None = None,
    captions: Sequence[MediaCaption] = (),
    upload: MediaUpload | None = None,
) -> dict[str, Any]:
    """The asset's JSON; `token` (None when auth is off) goes into every file URL so players need no key."""
    urls = FileUrls(base_url, media.id, token)
    return MediaPublic.of(media, jobs=jobs, urls=urls, captions=captions, upload=upload).model_dump(
        mode="json"
    )


def caption_public(caption: MediaCaption, *, base_url: str, token: str | None = None) -> dict[str, Any]:
    """A caption track's JSON, its URL on this API (with the asset's playback token when auth is on)."""
    return CaptionPublic.of(caption, FileUrls(base_url, caption.media_id, token)).model_dump(mode="json")
