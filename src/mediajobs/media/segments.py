"""An asset's stored HLS renditions as the outputs read them: their segments, where each starts, fetched.

Downloads, storyboards and images are made from what the ladder already holds, never from the original: a
rendition's playlist gives each segment's duration, and a segment starts where the ones before it end (the
grid's first frame is time 0, as a player counts).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediajobs.errors import Conflict
from mediajobs.jobs.context import JobContext
from mediajobs.media import assets
from mediajobs.storage import Storage
from mediajobs.toolkit.hls.ladder import AUDIO
from mediajobs.toolkit.hls.playlists import SEGMENT_NAME, parse_media_playlist, playlist_path

FETCH_THREADS = 8
# A request's time is a millisecond; a segment's start, summed from six-decimal EXTINFs, may be a hair late.
TOLERANCE_S = 0.0005


@dataclass(frozen=True)
class Rendition:
    """One stored rendition of an HLS version: where its segments are and how long each lasts."""

    prefix: str  # storage key prefix of the rendition's directory, ending in '/'
    name: str  # "720p", or "audio"
    width: int | None
    height: int | None
    durations: tuple[float, ...]

    @property
    def starts(self) -> list[float]:
        return [0.0, *itertools.accumulate(self.durations)][:-1]

    @property
    def end(self) -> float:
        return sum(self.durations)

    def key(self, i: int) -> str:
        return f"{self.prefix}{SEGMENT_NAME.format(i)}"

    def covering(self, t: float) -> int:
        """The segment that shows time `t` (the last one when `t` is at or past the end)."""
        return max(0, min(len(self.durations) - 1, bisect.bisect_right(self.starts, t + TOLERANCE_S) - 1))


def version(media: Any) -> str:
    """The asset's current HLS version (its directory name under hls/); Conflict when it has none."""
    if not media.hls:
        raise Conflict(f"media {media.id} has no HLS stream; reprocess it with the hls step")
    return str(media.hls["path"]).split("/", 1)[1]


def video_variants(media: Any) -> list[dict[str, Any]]:
    """The asset's video renditions as its hls record lists them, best first."""
    return [v for v in (media.hls or {}).get("variants", []) if v.get("height")]


def load(
    storage: Storage, media: Any, variant_path: str, *, width: int | None, height: int | None
) -> Rendition:
    """A rendition of the current version by its playlist path ("720p/index.m3u8", "audio/index.m3u8")."""
    root = f"{assets.prefix(media.id)}{media.hls['path']}/"
    text = storage.read_bytes(root + variant_path).decode("utf-8")
    durations = tuple(d for d, _ in parse_media_playlist(text))
    name = variant_path.split("/", 1)[0]
    return Rendition(f"{root}{name}/", name, width, height, durations)


def video(
    storage: Storage, media: Any, *, at_least: tuple[int, int] | None = None, best: bool = True
) -> Rendition:
    """A video rendition: the best one, the smallest one (`best=False`), or the smallest at least `at_least`
    (width, height) in size (the best when none is)."""
    variants = video_variants(media)
    if not variants:
        raise Conflict(f"media {media.id} has no video")
    chosen = variants[0] if best else variants[-1]
    if at_least is not None:
        w, h = at_least
        big_enough = [v for v in variants if (v.get("width") or 0) >= w and (v.get("height") or 0) >= h]
        chosen = big_enough[-1] if big_enough else variants[0]
    return load(storage, media, chosen["path"], width=chosen.get("width"), height=chosen.get("height"))


def by_height(storage: Storage, media: Any, height: int) -> Rendition | None:
    """The video rendition `height` pixels high, or None."""
    for v in video_variants(media):
        if v.get("height") == height:
            return load(storage, media, v["path"], width=v.get("width"), height=height)
    return None


def audio(storage: Storage, media: Any) -> Rendition | None:
    """The audio rendition, or None when the asset has no sound."""
    if not (media.probe or {}).get("audio_codec"):
        return None
    return load(storage, media, playlist_path(AUDIO), width=None, height=None)


def files(
    ctx: JobContext, storage: Storage, rendition: Rendition, indices: Sequence[int], directory: Path
) -> list[Path]:
    """Segments `indices` of `rendition` as files the job's children read, in the order given: the stored
    files themselves where the storage keeps files (local storage: nothing is copied, and their directory is
    shown to the children read-only), else fetched into `directory`."""
    in_place = [storage.readable_path(rendition.key(i)) for i in indices]
    found = [path for path in in_place if path is not None]
    if len(found) < len(in_place):
        return fetch(storage, rendition, indices, directory)
    for parent in dict.fromkeys(path.parent for path in found):
        ctx.allow_reading(parent)
    return found


def all_files(ctx: JobContext, storage: Storage, rendition: Rendition, directory: Path) -> list[Path]:
    return files(ctx, storage, rendition, range(len(rendition.durations)), directory)


def fetch(storage: Storage, rendition: Rendition, indices: Sequence[int], directory: Path) -> list[Path]:
    """Segments `indices` of `rendition` into `directory` (several at a time), in the order given."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / SEGMENT_NAME.format(i) for i in indices]
    if len(paths) == 1:
        storage.get_file(rendition.key(indices[0]), paths[0])
        return paths
    with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
        list(pool.map(lambda i, path: storage.get_file(rendition.key(i), path), indices, paths))
    return paths
