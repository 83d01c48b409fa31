"""A ladder made on this machine by the toolkit calls `media.process` makes, in its order, without storage.

`media.process` (media/kinds/transcode.py, media/faststart.py) plans the ladder on the source's whole index
(as a reprocess or a short source does; a long first processing cuts a prefix first, which
tests/media_api/test_fast_start checks), cuts the source's own stream into the top rendition when it can
(`remux`, then `copy_is_exact`; if a segment would not start clean it plans again with every rung encoded),
makes the audio once (`encode_audio`, unless the remux copied it), encodes the other rungs in one decode or
chunk by chunk (`encode`), and writes every playlist and the master with bandwidths measured from the
segments. `make_ladder` does the same into a directory, so the toolkit's tests check what production makes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediajobs.toolkit import packets
from mediajobs.toolkit.hls import grid as grids
from mediajobs.toolkit.hls import ladder as ladders
from mediajobs.toolkit.hls import playlists, renditions
from mediajobs.toolkit.hls.ladder import AUDIO, Ladder
from mediajobs.toolkit.probe import Probe
from mediajobs.toolkit.progress import FractionCallback


@dataclass
class Made:
    """The ladder as made (re-planned when its copy was refused) and each rendition's segment sizes."""

    ladder: Ladder
    sizes: dict[str, list[int]]

    @property
    def variants(self) -> list[dict[str, Any]]:
        """The `variants` of the asset's hls record, as the media JSON lists them."""
        return playlists.variants(self.ladder, self.sizes)


def make_ladder(
    src: Path,
    out: Path,
    info: Probe,
    *,
    chunk_s: float | None = None,
    on_progress: FractionCallback | None = None,
) -> Made:
    """The whole ladder of `src` in `out`; `chunk_s`: the encoded rungs chunk by chunk, the first short.

    `on_progress` follows the encode of the rungs (one decode when not chunked).
    """
    index = None
    if info.has_video:
        index = packets.scan(src, duration_s=info.duration, max_pixels=info.max_pixels)
    lad = ladders.plan(info, index)
    n = len(lad.grid)
    sizes: dict[str, list[int]] = {}
    if lad.fast_start is None:
        renditions.remux(src, out, lad, info)
        problem = renditions.copy_is_exact(out, lad)
        if problem is None:
            copied = [lad.renditions[0].name] + ([AUDIO] if lad.audio == "copy" else [])
            sizes = {name: renditions.segment_sizes(out / name, 0, n) for name in copied}
        else:
            shutil.rmtree(out)
            lad = ladders.plan_encoded(info, index, problem)
            n = len(lad.grid)
    if not lad.encoded and not lad.audio_apart:
        renditions.verify(src, lad, info)
    if lad.audio_apart:
        renditions.encode_audio(src, out, lad, info)
        sizes[AUDIO] = renditions.segment_sizes(out / AUDIO, 0, n)
    spans = grids.chunks(lad.grid, chunk_s, short_first=True) if chunk_s else [(0, n)]
    for span in spans:
        renditions.encode(src, out, lad, info, segments=span, on_progress=on_progress)
        for r in lad.encoded:
            sizes.setdefault(r.name, []).extend(renditions.segment_sizes(out / r.name, *span))
    for name in sizes:
        (out / playlists.playlist_path(name)).write_text(playlists.media_playlist_for(lad))
    (out / playlists.MASTER).write_text(playlists.master(lad, lad.names, sizes))
    return Made(lad, sizes)
