"""A derived asset's first ladder, built from its parent's where the edit left the pictures alone.

A mask, a frame removal or a clip knows from its smart render which of the parent's frames the derived asset
shows, in which order, and which it changed (`hls.reuse.Edit`). The operation hands that, with the parent's
HLS version as it found it, to the derived asset's media.process (`FromParent`), which builds rung by rung:

- the grid from the parent's (`reuse.plan`): a boundary wherever the parent had one on a kept frame (and,
  when the derived stream is copied on top, where it has a keyframe);
- the copied top rendition and its AAC audio: the derived original's own stream, cut on that grid as fast
  start cuts it, published while it is cut;
- every encoded rung: each segment the edit left alone is the parent's, read from the parent's version and
  moved in time by what was cut before it (`tsshift`); the others are encoded from the derived original at
  the rung's settings, with the same keyframes, all rungs in one decode per stretch;
- the audio, when the top does not copy it: made whole from the derived original.

The parent's version is a snapshot: a version's files never change and only that version is read. When the
parent was deleted or reprocessed before its version's ladder is read, or that ladder cannot serve this one,
the full path runs and the job's result says why; a segment that goes away while it is being copied is
encoded instead. Either way the ladder comes from one parent version and the derived original, never two.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mediajobs.jobs.context import JobContext, Phase
from mediajobs.media import assets, builds, faststart
from mediajobs.media.builds import LADDER, Build
from mediajobs.media.operations import FromParent
from mediajobs.storage import ObjectNotFound, for_process
from mediajobs.toolkit import packets
from mediajobs.toolkit.hls import ladder as ladders
from mediajobs.toolkit.hls import playlists, renditions, reuse, tsshift
from mediajobs.toolkit.hls.ladder import AUDIO, Ladder
from mediajobs.toolkit.hls.renditions import MPEGTS_HZ
from mediajobs.toolkit.packets import VideoIndex
from mediajobs.toolkit.probe import Probe

log = logging.getLogger(__name__)

# A derived stream cut on a known grid is published once this many segments are stored.
PUBLISH_AFTER = 6


@dataclass(frozen=True)
class Plan:
    """The derived ladder and where its segments come from: the parent's version (`prefix`) or an encode."""

    prefix: str
    reuse: reuse.Reuse
    ladder: Ladder
    index: VideoIndex


def plan(ctx: JobContext, media: Any, src: Path, info: Probe, given: FromParent) -> Plan | str:
    """How the derived ladder reuses the parent's, or why it cannot."""
    if given.reason:
        return given.reason
    if not given.version or not given.edit:
        return "the operation did not say how the derived frames come from the parent's"
    parent = assets.find_media(ctx.db, media.parent_id) if media.parent_id else None
    if parent is None or parent.state == assets.DELETING:
        return "the parent asset was deleted before its ladder was read"
    prefix = f"{assets.prefix(parent.id)}{given.version}/"
    storage = for_process(ctx.settings)
    try:
        data = json.loads(storage.read_bytes(prefix + LADDER))
    except ObjectNotFound:
        if storage.exists(prefix + playlists.MASTER):
            return "the parent's ladder was made before ladders were recorded for reuse (reprocess it)"
        return "the parent's ladder went away (the parent was deleted or reprocessed) before it was read"
    theirs = ladders.from_json(data["ladder"])
    if not info.has_video:
        return "the derived asset has no video"
    index = packets.scan(src, duration_s=info.duration, max_pixels=info.max_pixels)
    mine = ladders.plan(info, index)
    if _shape(mine) != _shape(theirs):
        return f"its renditions ({_describe(mine)}) are not its parent's ({_describe(theirs)})"
    copied_top = mine.renditions[0].copy
    try:
        edit = reuse.Edit.from_json(given.edit)
        found = reuse.plan(
            theirs.grid,
            edit,
            index.frames,
            index.end,
            keyframes=index.keyframes if copied_top else None,
        )
    except reuse.NotReusable as exc:
        return str(exc)
    keys = tuple(index.keyframes) if copied_top else found.grid.starts
    return Plan(prefix, found, replace(mine, grid=found.grid, keyframes=keys), index)


def _shape(ladder: Ladder) -> list[tuple[str, int, int, bool, int]]:
    return [(r.name, r.width, r.height, r.copy, r.video_bitrate) for r in ladder.renditions]


def _describe(ladder: Ladder) -> str:
    return ", ".join(f"{r.name}{' copied' if r.copy else ''}" for r in ladder.renditions) or "none"


class Abandoned(Exception):
    """The derived ladder cannot be finished from the parent's after all (the message says why): what it
    published is withdrawn and the full path runs."""


@dataclass
class Made:
    """The sizes of every rendition's segments, in grid order, and how many were copied or encoded."""

    sizes: dict[str, list[int]]
    copied: int
    encoded: int
    gone: int

    def public(self) -> dict[str, Any]:
        note = {"built": "from_parent", "copied_segments": self.copied, "encoded_segments": self.encoded}
        if self.gone:
            note["reason"] = f"{self.gone} segment(s) went away with the parent's version and were encoded"
        return note


def build(ctx: JobContext, b: Build, src: Path, found: Plan, on_top: Any = None) -> Made:
    """Every rendition of the derived ladder: the top cut (and published), the rest copied or encoded.

    `on_top()` runs once the top is published (the thumbnail is made there).
    """
    lad = b.ladder
    n = len(lad.grid)
    made: dict[str, list[int]] = {}
    if lad.renditions[0].copy:
        made = faststart.cut_whole(ctx, b, src, publish_after=min(n, PUBLISH_AFTER))
    if on_top is not None:
        on_top()
    sizes: dict[str, dict[int, int]] = {r.name: {} for r in lad.encoded}
    gone = _copy(ctx, b, found, sizes)
    parents = [p if k not in gone else None for k, p in enumerate(found.reuse.parents)]
    spans = replace(found.reuse, parents=tuple(parents)).spans()
    _encode(ctx, b, src, spans, sizes)
    if lad.audio_apart:
        made[AUDIO] = builds.make_audio(ctx, b, src, ctx.temp_dir / "audio", Phase(ctx, 93, 96, "The audio"))
    for name, by_segment in sizes.items():
        made[name] = [by_segment[k] for k in range(n)]
    copied = sum(p is not None for p in parents)
    return Made(made, copied, n - copied, len(gone))


def _copy(ctx: JobContext, b: Build, found: Plan, sizes: dict[str, dict[int, int]]) -> set[int]:
    """Copy every segment the edit left alone from the parent's version, moved in time; the derived segments
    whose parent segment was gone (they are encoded instead)."""
    storage = for_process(ctx.settings)
    pairs = [(k, p) for k, p in enumerate(found.reuse.parents) if p is not None]
    phase = Phase(ctx, 10, 40, f"Copying {len(pairs)} segment(s) from the parent's ladder")
    gone: set[int] = set()
    for done, (k, parent) in enumerate(pairs):
        ticks = round(found.reuse.shifts[k] * MPEGTS_HZ)
        for name in sizes:
            source = f"{found.prefix}{name}/{playlists.SEGMENT_NAME.format(parent)}"
            try:
                data = tsshift.shift(storage.read_bytes(source), ticks)
            except ObjectNotFound:
                log.info("media %s: %s went away; its segment %d is encoded instead", b.media_id, source, k)
                gone.add(k)
                break
            b.storage.put_bytes(
                f"{b.prefix}{name}/{playlists.SEGMENT_NAME.format(k)}", data, content_type="video/mp2t"
            )
            sizes[name][k] = len(data)
        phase((done + 1) / len(pairs))
    return gone


def _encode(
    ctx: JobContext, b: Build, src: Path, spans: list[tuple[int, int]], sizes: dict[str, dict[int, int]]
) -> None:
    """Encode the segments in `spans` of every encoded rung from the derived original, a decode a stretch."""
    lad, out = b.ladder, ctx.temp_dir / "encode"
    if not lad.encoded:  # one copied rung (a small standard source) and no sound to encode with it
        return
    total = sum(ladders.cost(lad, builds.seconds(lad, s)) for s in spans) or 1.0
    done = 0.0
    for span in spans:
        share = ladders.cost(lad, builds.seconds(lad, span)) / total
        first, stop = span
        renditions.encode(
            src,
            out,
            lad,
            b.probe,
            segments=span,
            threads=ctx.settings.effective_ffmpeg_threads,
            on_progress=Phase(
                ctx, 40 + 53 * done, 40 + 53 * (done + share), f"Encoding segments {first}-{stop - 1}"
            ),
        )
        for r in lad.encoded:
            for k, size in zip(
                range(first, stop), renditions.segment_sizes(out / r.name, first, stop), strict=True
            ):
                sizes[r.name][k] = size
        b.upload(out)
        shutil.rmtree(out, ignore_errors=True)
        done += share
