"""HLS ladder: plan the renditions a source deserves, then make them all in one ffmpeg process."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mediajobs import process
from mediajobs.errors import UnsupportedMedia
from mediajobs.media.ffmpeg import run_ffmpeg
from mediajobs.media.inputs import input_args, probe_limits
from mediajobs.media.probe import FFPROBE, Probe
from mediajobs.media.progress import FractionCallback

PRESET = "veryfast"
MASTER = "master.m3u8"
AUDIO_BITRATE = 128_000
# (shorter side, video bitrate cap in bit/s), best first.
LADDER = ((1080, 5_000_000), (720, 2_800_000), (480, 1_400_000), (360, 800_000))


@dataclass(frozen=True)
class Rendition:
    """One rung of the ladder; bitrates in bit/s."""

    height: int
    width: int
    video_bitrate: int
    maxrate: int
    bufsize: int
    audio_bitrate: int

    @property
    def name(self) -> str:
        """Directory and label: the shorter side, so portrait 1080x1920 is "1080p" like its landscape twin."""
        return f"{min(self.width, self.height)}p"


@dataclass
class HlsOutput:
    """Where the playlists are, relative to the output directory."""

    master: str = MASTER
    variants: list[dict[str, Any]] = field(default_factory=list)


def plan_ladder(probe: Probe) -> list[Rendition]:
    """Standard rungs up to the source's size, or one rung at its own size when it is smaller than all."""
    if not probe.has_video or not probe.width or not probe.height:
        return []
    width, height = probe.width, probe.height
    short = min(width, height)
    rungs = [(rung, rate) for rung, rate in LADDER if rung <= short]
    if not rungs:
        return [_rendition(_even(width), _even(height), LADDER[-1][1])]
    renditions = []
    for rung, rate in rungs:
        # Scale the shorter side to the rung and keep the aspect ratio; x264 wants even dimensions.
        scale = rung / short
        renditions.append(_rendition(_even(width * scale), _even(height * scale), rate))
    return renditions


def _rendition(width: int, height: int, rate: int) -> Rendition:
    # A one-second VBV buffer keeps any 4-6 s segment close to the cap.
    return Rendition(height, width, rate, rate, rate, AUDIO_BITRATE)


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def transcode_hls(
    src: str | Path,
    out_dir: str | Path,
    probe: Probe,
    *,
    threads: int = 0,
    segment_s: int = 4,
    on_progress: FractionCallback | None = None,
) -> HlsOutput:
    """Make `out_dir/master.m3u8` and `<name>/index.m3u8` + `<name>/seg_NNNNN.ts` from one decode."""
    src, out_dir = Path(src).resolve(), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    renditions = plan_ladder(probe)
    if not renditions and not probe.has_audio:
        raise UnsupportedMedia("no video or audio stream to transcode")
    names = [r.name for r in renditions] or ["audio"]
    args = ["-v", "error", *input_args(src, duration_s=probe.duration)]
    args += _stream_args(renditions, probe, segment_s)
    args += ["-threads", str(threads)]
    args += [
        "-f", "hls",
        "-hls_time", str(segment_s),
        "-hls_playlist_type", "vod",
        "-hls_flags", "independent_segments",
        "-hls_segment_filename", "%v/seg_%05d.ts",
        "-master_pl_name", MASTER,
        "-var_stream_map", _stream_map(names, video=bool(renditions), audio=probe.has_audio),
        "%v/index.m3u8",
    ]  # fmt: skip
    # Relative names with cwd=out_dir: hlsenc puts the master next to the %v directories and refers to them
    # relatively, whatever the absolute path looks like.
    run_ffmpeg(args, probe.duration, on_progress, source=probe, outputs=len(names), cwd=out_dir)
    variants = _write_master(out_dir, renditions, names, segment_s)
    return HlsOutput(master=MASTER, variants=variants)


def _stream_args(renditions: list[Rendition], probe: Probe, segment_s: int) -> list[str]:
    args: list[str] = []
    if renditions:
        n = len(renditions)
        # V, not v: a cover picture is not the video.
        chains = [f"[0:V:0]split={n}" + "".join(f"[s{i}]" for i in range(n))]
        for i, r in enumerate(renditions):
            chains.append(f"[s{i}]scale={r.width}:{r.height},setsar=1,format=yuv420p[v{i}]")
        args += ["-filter_complex", ";".join(chains)]
        for i in range(n):
            args += ["-map", f"[v{i}]"]
        # Every rendition cuts at the same instants: a fixed GOP of one segment, no scene-cut keyframes, and
        # keyframes forced by time for variable-frame-rate sources.
        gop = max(1, round((probe.fps or 30.0) * segment_s))
        args += ["-c:v", "libx264", "-preset", PRESET, "-profile:v", "high"]
        args += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
        args += ["-force_key_frames", f"expr:gte(t,n_forced*{segment_s})"]
        # hlsenc asks for constant frame rate, so a timestamp gap would be filled with copies of the last
        # frame (a two-frame file claiming a day made a day of segments); vfr passes frames as they are.
        args += ["-fps_mode", "vfr"]
        for i, r in enumerate(renditions):
            args += [f"-b:v:{i}", str(r.video_bitrate), f"-maxrate:v:{i}", str(r.maxrate)]
            args += [f"-bufsize:v:{i}", str(r.bufsize)]
    if probe.has_audio:
        # Audio is muxed into every variant, so each one plays on its own.
        args += ["-map", "0:a:0"] * max(1, len(renditions))
        args += ["-c:a", "aac", "-b:a", str(AUDIO_BITRATE)]
        if (probe.audio_channels or 2) > 2:
            args += ["-ac", "2"]
    return args


def _stream_map(names: list[str], *, video: bool, audio: bool) -> str:
    entries = []
    for i, name in enumerate(names):
        parts = ([f"v:{i}"] if video else []) + ([f"a:{i}"] if audio else []) + [f"name:{name}"]
        entries.append(",".join(parts))
    return " ".join(entries)


def _write_master(out_dir: Path, renditions: list[Rendition], names: list[str], segment_s: int) -> list[dict]:
    """Rewrite ffmpeg's master with measured bandwidths and CODECS it may have left out."""
    ffmpeg_master = (out_dir / MASTER).read_text() if (out_dir / MASTER).exists() else ""
    found = re.findall(r"#EXT-X-STREAM-INF:([^\n]*)\n([^\n#]+)", ffmpeg_master)
    declared = {uri.strip(): attrs for attrs, uri in found}
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    variants = []
    for i, name in enumerate(names):
        uri = f"{name}/index.m3u8"
        segments = _segments(out_dir / uri)
        if not segments:
            raise UnsupportedMedia(f"ffmpeg produced no segments for {name}")
        peak, average = _bitrates(segments, segment_s)
        match = re.search(r'CODECS="([^"]+)"', declared.get(uri, ""))
        codecs = match.group(1) if match else _codecs(segments[0][1])
        attrs = f"BANDWIDTH={peak},AVERAGE-BANDWIDTH={average}"
        rendition = renditions[i] if renditions else None
        if rendition is not None:
            attrs += f",RESOLUTION={rendition.width}x{rendition.height}"
        attrs += f',CODECS="{codecs}"'
        lines += [f"#EXT-X-STREAM-INF:{attrs}", uri]
        variants.append(
            {
                "height": rendition.height if rendition else None,
                "width": rendition.width if rendition else None,
                "bandwidth": peak,
                "path": uri,
            }
        )
    (out_dir / MASTER).write_text("\n".join(lines) + "\n")
    return variants


def _segments(playlist: Path) -> list[tuple[float, Path]]:
    """(duration, file) of each segment of a media playlist."""
    if not playlist.exists():
        return []
    result = []
    duration: float | None = None
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",")[0])
        elif line and not line.startswith("#") and duration is not None:
            result.append((duration, playlist.parent / line.strip()))
            duration = None
    return result


def _bitrates(segments: list[tuple[float, Path]], target_s: int) -> tuple[int, int]:
    """(peak, average) bit/s as RFC 8216 defines them for BANDWIDTH and AVERAGE-BANDWIDTH."""
    sizes = [(d, p.stat().st_size * 8) for d, p in segments]
    total_s = sum(d for d, _ in sizes)
    average = math.ceil(sum(b for _, b in sizes) / total_s) if total_s > 0 else 0
    # Peak: the highest rate of any run of contiguous segments lasting 0.5-1.5 target durations, so a short
    # final segment holding a keyframe does not count as a whole segment's worth.
    peak = 0
    for start in range(len(sizes)):
        span_s = span_bits = 0.0
        for d, bits in sizes[start:]:
            span_s += d
            span_bits += bits
            if span_s > 1.5 * target_s:
                break
            if span_s >= 0.5 * target_s:
                peak = max(peak, math.ceil(span_bits / span_s))
    return max(peak, average), average


def _codecs(segment: Path) -> str:
    """RFC 6381 codec names of a segment, for when ffmpeg could not write them itself."""
    args = [FFPROBE, "-v", "error", "-print_format", "json", "-show_streams", *input_args(segment)]
    done = process.run(args, capture_stdout=True, limits=probe_limits(), network=False)
    streams = json.loads(done.stdout or "{}").get("streams", [])
    codecs = []
    for s in streams:
        if s.get("codec_name") == "h264":
            profile = {"Baseline": "4200", "Constrained Baseline": "42e0", "Main": "4d40"}
            level = int(s.get("level") or 31)
            codecs.append(f"avc1.{profile.get(s.get('profile', ''), '6400')}{level:02x}")
        elif s.get("codec_name") == "aac":
            codecs.append("mp4a.40.5" if s.get("profile") == "HE-AAC" else "mp4a.40.2")
    return ",".join(codecs)
