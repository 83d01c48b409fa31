"""The media JSON, byte for byte, for assets in every state: what the API answers and webhooks carry."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from mediajobs.db.models import Media, MediaCaption
from mediajobs.media import assets, schemas

CREATED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
UPDATED = datetime(2026, 3, 1, 12, 0, 5, 250000, tzinfo=UTC)
PLAYABLE = datetime(2026, 3, 1, 12, 0, 3, tzinfo=UTC)
MEDIA_ID = "0b9d7a52-5f8e-4f57-9b1e-3f0f6f1c2a10"
PARENT_ID = "7c1e2f0a-9d3b-4a55-8e0c-5b2d1f4e6a77"
JOB = "5e0c1a2b-3d4e-4f60-8a7b-9c0d1e2f3a4b"
PROBE = {
    "duration": 12.0,
    "width": 854,
    "height": 480,
    "fps": 25.0,
    "video_codec": "h264",
    "audio_codec": "aac",
    "size": 812345,
}
ORIGINAL = {
    "size": 812345,
    "content_type": "video/mp4",
    "filename": "talk.mp4",
    "key": f"media/{MEDIA_ID}/original/talk.mp4",
}


def media(**fields: Any) -> Media:
    """An asset record as the database hands it back (timestamps in UTC)."""
    values: dict[str, Any] = {
        "id": MEDIA_ID,
        "title": "talk",
        "state": assets.PENDING,
        "source": {"type": "url", "url": "https://videos.example/talk.mp4"},
        "parent_id": None,
        "original": None,
        "probe": None,
        "hls": None,
        "thumbnail": None,
        "error": None,
        "pipeline": ["hls", "thumbnail"],
        "extra": {},
        "created_at": CREATED,
        "updated_at": UPDATED,
        "playable_at": None,
    }
    return Media(**{**values, **fields})


def hls(*variants: dict[str, Any]) -> dict[str, Any]:
    return {"path": "hls/4f2a9c1d0e", "master": "master.m3u8", "variants": list(variants)}


RUNG_480 = {"height": 480, "width": 854, "bandwidth": 1_650_000, "path": "480p/index.m3u8", "ready": True}
RUNG_360 = {"height": 360, "width": 640, "bandwidth": 950_000, "path": "360p/index.m3u8", "ready": False}
FILES = f"http://127.0.0.1:8000/api/v1/media/{MEDIA_ID}/files"
REMOTE = f"https://media.example.com/api/v1/media/{MEDIA_ID}/files"

# The JSON of `media()`, every key in the order the API writes it; each case says what differs.
PENDING = {
    "id": MEDIA_ID,
    "title": "talk",
    "state": "pending",
    "source": {"type": "url", "url": "https://videos.example/talk.mp4"},
    "parent_id": None,
    "original": None,
    "probe": None,
    "hls": None,
    "thumbnail_url": None,
    "error": None,
    "upload": None,
    "playable_at": None,
    "jobs": [JOB],
    "pipeline": ["hls", "thumbnail"],
    "thumbnail_error": None,
    "captions": [],
    "downloads": [],
    "storyboard": None,
    "created_at": "2026-03-01T12:00:00Z",
    "updated_at": "2026-03-01T12:00:05.250000Z",
}


def answer(**changes: Any) -> dict[str, Any]:
    """PENDING with `changes`, in PENDING's key order."""
    assert set(changes) <= set(PENDING), set(changes) - set(PENDING)
    return {**PENDING, **changes}


# (asset, base URL, playback token, jobs, the JSON the API answers)
CASES: dict[str, tuple[Media, str, str | None, list[str], dict[str, Any]]] = {
    "import-accepted": (media(), "http://127.0.0.1:8000/", None, [JOB], PENDING),
    "upload-processing": (
        media(
            state=assets.PROCESSING,
            source={"type": "upload", "filename": "talk.mp4"},
            original=ORIGINAL,
            pipeline=["thumbnail"],
            extra=None,
        ),
        "http://127.0.0.1:8000",
        None,
        [JOB],
        answer(
            state="processing",
            source={"type": "upload", "filename": "talk.mp4"},
            original={"size": 812345, "content_type": "video/mp4", "filename": "talk.mp4"},
            pipeline=["thumbnail"],
            downloads=[
                {
                    "type": "original",
                    "height": None,
                    "content_type": "video/mp4",
                    "size": 812345,
                    "url": f"{FILES}/original/talk.mp4",
                    "ready": True,
                }
            ],
        ),
    ),
    "playable-early-with-token": (
        media(
            state=assets.PROCESSING,
            original=ORIGINAL,
            probe=PROBE,
            hls=hls(RUNG_480, RUNG_360),
            playable_at=PLAYABLE,
        ),
        "http://127.0.0.1:8000/",
        "pt.abc",
        [JOB, "second-job"],
        answer(
            state="processing",
            original={"size": 812345, "content_type": "video/mp4", "filename": "talk.mp4"},
            probe=PROBE,
            hls={
                "master_url": f"{FILES}/hls/4f2a9c1d0e/master.m3u8?token=pt.abc",
                "variants": [
                    {
                        "height": 480,
                        "width": 854,
                        "bandwidth": 1650000,
                        "ready": True,
                        "url": f"{FILES}/hls/4f2a9c1d0e/480p/index.m3u8?token=pt.abc",
                    },
                    {
                        "height": 360,
                        "width": 640,
                        "bandwidth": 950000,
                        "ready": False,
                        "url": f"{FILES}/hls/4f2a9c1d0e/360p/index.m3u8?token=pt.abc",
                    },
                ],
            },
            playable_at="2026-03-01T12:00:03Z",
            jobs=[JOB, "second-job"],
            downloads=[
                {
                    "type": "original",
                    "height": 480,
                    "content_type": "video/mp4",
                    "size": 812345,
                    "url": f"{FILES}/original/talk.mp4?token=pt.abc",
                    "ready": True,
                }
            ],
        ),
    ),
    # Versions made before fast start list only finished variants, without `ready` (or `width`).
    "ready-from-before-fast-start": (
        media(
            state=assets.READY,
            original=ORIGINAL,
            probe=PROBE,
            hls=hls({"height": 480, "bandwidth": 1_650_000, "path": "480p/index.m3u8"}),
            thumbnail="thumbnail/4f2a9c1d0e.jpg",
            extra={"thumbnail_error": None, "last_error": {"code": "internal", "message": "x"}},
        ),
        "https://media.example.com",
        None,
        [],
        answer(
            state="ready",
            original={"size": 812345, "content_type": "video/mp4", "filename": "talk.mp4"},
            probe=PROBE,
            hls={
                "master_url": f"{REMOTE}/hls/4f2a9c1d0e/master.m3u8",
                "variants": [
                    {
                        "height": 480,
                        "width": None,
                        "bandwidth": 1650000,
                        "ready": True,
                        "url": f"{REMOTE}/hls/4f2a9c1d0e/480p/index.m3u8",
                    }
                ],
            },
            thumbnail_url=f"{REMOTE}/thumbnail/4f2a9c1d0e.jpg",
            jobs=[],
            downloads=[
                {
                    "type": "original",
                    "height": 480,
                    "content_type": "video/mp4",
                    "size": 812345,
                    "url": f"{REMOTE}/original/talk.mp4",
                    "ready": True,
                }
            ],
        ),
    ),
    "ready-audio-only-without-thumbnail": (
        media(
            state=assets.READY,
            original={**ORIGINAL, "content_type": "audio/mp4", "filename": None},
            probe={**PROBE, "width": None, "height": None, "fps": None, "video_codec": None},
            hls=hls(
                {
                    "height": None,
                    "width": None,
                    "bandwidth": 140_000,
                    "path": "audio/index.m3u8",
                    "ready": True,
                }
            ),
            extra={"thumbnail_error": {"code": "no_video", "message": "the source has no video stream"}},
            playable_at=PLAYABLE,
        ),
        "http://127.0.0.1:8000/",
        "pt.xyz",
        [JOB],
        answer(
            state="ready",
            original={"size": 812345, "content_type": "audio/mp4", "filename": None},
            probe={
                "duration": 12.0,
                "width": None,
                "height": None,
                "fps": None,
                "video_codec": None,
                "audio_codec": "aac",
                "size": 812345,
            },
            hls={
                "master_url": f"{FILES}/hls/4f2a9c1d0e/master.m3u8?token=pt.xyz",
                "variants": [
                    {
                        "height": None,
                        "width": None,
                        "bandwidth": 140000,
                        "ready": True,
                        "url": f"{FILES}/hls/4f2a9c1d0e/audio/index.m3u8?token=pt.xyz",
                    }
                ],
            },
            playable_at="2026-03-01T12:00:03Z",
            thumbnail_error={"code": "no_video", "message": "the source has no video stream"},
            downloads=[
                {
                    "type": "original",
                    "height": None,
                    "content_type": "audio/mp4",
                    "size": 812345,
                    "url": f"{FILES}/original/talk.mp4?token=pt.xyz",
                    "ready": True,
                }
            ],
        ),
    ),
    "failed": (
        media(
            state=assets.FAILED,
            error={"code": "unsupported_media", "message": "the source is corrupt between 4.0 and 8.0 s"},
        ),
        "http://127.0.0.1:8000/",
        None,
        [JOB],
        answer(
            state="failed",
            error={"code": "unsupported_media", "message": "the source is corrupt between 4.0 and 8.0 s"},
        ),
    ),
    "derived-by-a-mask-without-pipeline": (
        media(
            parent_id=PARENT_ID,
            source={
                "parent_id": PARENT_ID,
                "type": "mask",
                "regions": [{"x": 0, "y": 0, "w": 100, "h": 50, "start": 0.0, "end": None, "style": "blur"}],
            },
            pipeline=None,
        ),
        "http://127.0.0.1:8000/",
        None,
        [JOB],
        answer(
            source={
                "parent_id": PARENT_ID,
                "type": "mask",
                "regions": [{"x": 0, "y": 0, "w": 100, "h": 50, "start": 0.0, "end": None, "style": "blur"}],
            },
            parent_id=PARENT_ID,
            pipeline=None,
        ),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_media_json_is_the_same_bytes_in_every_state(case: str) -> None:
    record, base_url, token, jobs, expected = CASES[case]

    made = schemas.public(record, jobs=jobs, base_url=base_url, token=token)

    assert json.dumps(made) == json.dumps(expected)


def test_caption_tracks_are_listed_oldest_first_with_their_file_urls() -> None:
    record = media(state=assets.READY, probe=PROBE, original=ORIGINAL)
    tracks = [
        MediaCaption(id="c1", media_id=MEDIA_ID, language="en", label="English", cues=12, created_at=CREATED),
        MediaCaption(
            id="c2", media_id=MEDIA_ID, language="pt-BR", label="Português", cues=3, created_at=UPDATED
        ),
    ]

    made = schemas.public(
        record, jobs=[JOB], base_url="http://127.0.0.1:8000/", token="9.sig", captions=tracks
    )

    files = f"http://127.0.0.1:8000/api/v1/media/{MEDIA_ID}/files/captions"
    assert made["captions"] == [
        {"id": "c1", "language": "en", "label": "English", "url": f"{files}/c1.vtt?token=9.sig", "cues": 12},
        {
            "id": "c2",
            "language": "pt-BR",
            "label": "Português",
            "url": f"{files}/c2.vtt?token=9.sig",
            "cues": 3,
        },
    ]


def test_downloads_and_storyboard_list_their_urls_once_ready() -> None:
    made_of = {"version": "4f2a9c1d0e", "width": 854, "content_type": "video/mp4"}
    record = media(
        state=assets.READY,
        probe=PROBE,
        original=ORIGINAL,
        hls=hls(RUNG_480),
        downloads=[
            {
                **made_of,
                "type": "mp4",
                "height": 480,
                "label": "480p",
                "path": "downloads/4f2a9c1d0e/480p.mp4",
                "size": 654321,
                "ready": True,
            },
            {
                "version": "4f2a9c1d0e",
                "type": "audio",
                "height": None,
                "width": None,
                "label": "audio",
                "path": "downloads/4f2a9c1d0e/audio.m4a",
                "content_type": "audio/mp4",
                "size": None,
                "ready": False,
            },
        ],
        storyboard={
            "version": "4f2a9c1d0e",
            "path": "storyboard/4f2a9c1d0e",
            "sheets": 2,
            "tile_width": 160,
            "tile_height": 90,
            "interval_s": 1.0,
            "count": 120,
        },
    )

    made = schemas.public(record, jobs=[JOB], base_url="http://127.0.0.1:8000/", token="9.sig")

    assert made["downloads"] == [
        {
            "type": "original",
            "height": 480,
            "content_type": "video/mp4",
            "size": 812345,
            "url": f"{FILES}/original/talk.mp4?token=9.sig",
            "ready": True,
        },
        {
            "type": "mp4",
            "height": 480,
            "content_type": "video/mp4",
            "size": 654321,
            "url": f"{FILES}/downloads/4f2a9c1d0e/480p.mp4?token=9.sig",
            "ready": True,
        },
        {
            "type": "audio",
            "height": None,
            "content_type": "audio/mp4",
            "size": None,
            "url": None,
            "ready": False,
        },
    ]
    assert made["storyboard"] == {
        "vtt_url": f"{FILES}/storyboard/4f2a9c1d0e/storyboard.vtt?token=9.sig",
        "images": [
            f"{FILES}/storyboard/4f2a9c1d0e/sheet_000.jpg?token=9.sig",
            f"{FILES}/storyboard/4f2a9c1d0e/sheet_001.jpg?token=9.sig",
        ],
        "tile_width": 160,
        "tile_height": 90,
        "interval_s": 1.0,
        "count": 120,
    }


def test_an_uploading_asset_shows_how_far_its_upload_has_come_and_others_never_do() -> None:
    progress = schemas.MediaUpload(
        url="http://127.0.0.1:8000/api/v1/uploads/u1",
        offset=400,
        length=1000,
        progress=40.0,
        expires_at="2026-03-02T12:00:05Z",
    )
    uploading = media(state=assets.UPLOADING, source={"type": "upload", "filename": "talk.mp4"})
    made = schemas.public(uploading, jobs=[], base_url="http://127.0.0.1:8000", upload=progress)
    assert made["state"] == "uploading"
    assert made["upload"] == {
        "url": "http://127.0.0.1:8000/api/v1/uploads/u1",
        "offset": 400,
        "length": 1000,
        "progress": 40.0,
        "expires_at": "2026-03-02T12:00:05Z",
    }
    processing = media(state=assets.PROCESSING, original=ORIGINAL)
    assert schemas.public(processing, jobs=[], base_url="http://x", upload=progress)["upload"] is None
