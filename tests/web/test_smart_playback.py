"""A smart-cut stream decodes in Chromium: natively as mp4 and through hls.js as the HLS a stream copy makes.

Copied open GOPs sit right after re-encoded ones, so the decoder meets new parameter sets and a keyframe that
is not an IDR at every join. Each frame shows its source index; every frame the browser presents must show
the one due at its time.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from mediajobs.testing.files import serve_directory
from mediajobs.testing.stacks import CHECKOUT
from mediajobs.toolkit.probe import probe
from mediajobs.toolkit.smart.render import smart_cut
from tests.toolkit.frames import ffmpeg
from tests.toolkit.opsclips import cached_clip
from tests.toolkit.smartclips import BAND, FPS, RANGES, kept, marked_clip

pytestmark = pytest.mark.slow

HLS_JS = CHECKOUT / "src" / "mediajobs" / "web" / "static" / "vendor" / "hls.min.mjs"
PAGE = """<!doctype html><video muted playsinline></video><canvas></canvas>
<script type="module">
import Hls from "./hls.min.mjs";
// Play `url` to the end at `rate`, reading the index band of every presented frame.
window.play = (url, rate) => new Promise((resolve) => {
  const video = document.querySelector("video"), canvas = document.querySelector("canvas");
  const seen = [], errors = [];
  const done = () => {
    const buffered = [];
    const ranges = video.buffered;
    for (let i = 0; i < ranges.length; i++) buffered.push([ranges.start(i), ranges.end(i)]);
    resolve({ seen, errors, buffered, corrupted: video.getVideoPlaybackQuality().corruptedVideoFrames });
  };
  const grab = (now, meta) => {
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(video, 0, 0);
    const row = context.getImageData(0, BAND / 2, canvas.width, 1).data;
    let index = 0;
    for (let k = 0; k < 10; k++) if (row[(32 * k + 16) * 4] > 128) index |= 1 << k;
    seen.push([meta.mediaTime, index]);
    video.requestVideoFrameCallback(grab);
  };
  video.requestVideoFrameCallback(grab);
  video.addEventListener("error", () => {
    errors.push([String(video.error?.message), video.currentTime]);
    done();
  });
  video.addEventListener("ended", done);
  video.addEventListener("loadedmetadata", () => { video.playbackRate = rate; video.play(); });
  if (url.endsWith(".m3u8")) {
    const hls = new Hls();
    hls.on(Hls.Events.ERROR, (_, data) => {
      errors.push([data.details, video.currentTime]);
      if (data.fatal) done();
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  } else {
    video.src = url;
  }
});
</script>""".replace("BAND", str(BAND))


@pytest.fixture(scope="module")
def www(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = cached_clip(tmp_path_factory, "smart-h264-open.mp4", lambda p: marked_clip(p, open_gop=True))
    root = tmp_path_factory.mktemp("smart-www")
    report = smart_cut(src, root / "cut.mp4", probe(src), RANGES)
    assert report.render == "smart"
    # What a stream-copy HLS remux of the derived asset serves.
    ffmpeg("-i", root / "cut.mp4", "-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
           "-hls_segment_filename", root / "seg%03d.ts", root / "index.m3u8")  # fmt: skip
    shutil.copy(HLS_JS, root / "hls.min.mjs")
    (root / "play.html").write_text(PAGE)
    return root


@pytest.mark.parametrize("url", ["cut.mp4", "index.m3u8"])
def test_smart_cut_plays_frame_exact_in_chromium(browser: Browser, www: Path, url: str) -> None:
    expected = kept()
    with serve_directory(www) as server:
        page = browser.new_page()
        try:
            page.goto(server.url("play.html"))
            result: dict[str, Any] = page.evaluate("([u, r]) => window.play(u, r)", [url, 1.0])
        finally:
            page.close()
    # hls.js steps over the B-frame delay before the first frame of any MPEG-TS stream, smart or not. A stall
    # (the buffer ran dry on a busy machine) is no defect of the stream; a hole in it is, and shows in what
    # the player buffered: one range, from the first frame to the last.
    stalls = ("bufferStalledError", "bufferNudgeOnStall")
    assert [
        e for e in result["errors"] if e[0] not in stalls and (e[0] != "bufferSeekOverHole" or e[1] > 0.5)
    ] == []
    (first, last), *holes = result["buffered"]
    assert holes == [] and first <= 0.5 and last >= len(expected) / FPS - 0.1, result["buffered"]
    assert result["corrupted"] == 0
    seen = result["seen"]
    # A busy machine may skip frames (a CI run at 4x showed 8 of 250), never show wrong ones; and every piece
    # the cut kept, on both sides of each join, is shown.
    pieces = [kept_piece for kept_piece in _pieces(expected) if any(index in kept_piece for _, index in seen)]
    assert len(pieces) == len(_pieces(expected)) and len(seen) >= 10, seen
    # Every frame shown is one the cut kept (a broken decode spells other numbers), in order, at its time:
    # hls.js starts the timeline where the first segment's first frame is, mp4 at zero, and a busy page
    # may draw a frame or a few after the one its callback announced, never an earlier one.
    positions = [expected.index(index) if index in expected else -1 for _, index in seen]
    assert -1 not in positions and positions == sorted(positions)
    starts = [t - position / FPS for (t, _), position in zip(seen, positions, strict=True)]
    lag = [round((max(starts) - start) * FPS) for start in starts]
    assert max(lag) <= 12, lag


def _pieces(indices: list[int]) -> list[range]:
    """The runs of consecutive source frames in `indices`: what the cut kept, piece by piece."""
    starts = [i for i, index in enumerate(indices) if i == 0 or index != indices[i - 1] + 1]
    ends = [*starts[1:], len(indices)]
    return [range(indices[a], indices[b - 1] + 1) for a, b in zip(starts, ends, strict=True)]
