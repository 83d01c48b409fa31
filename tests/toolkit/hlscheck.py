"""What a finished HLS ladder must be, read back with ffprobe/ffmpeg: the checks issue 10 lists.

Each rendition is read as its playlist lists it (the segments concatenated in order), so a seam between
two chunks made by different processes shows up exactly as a player would meet it.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mediajobs.toolkit.hls.playlists import parse_media_playlist


@dataclass
class Rendition:
    name: str
    durations: list[float]
    segments: list[Path]


def renditions(out: Path) -> dict[str, Rendition]:
    """Every media playlist the master names (variants and the audio rendition)."""
    master = (out / "master.m3u8").read_text()
    uris = re.findall(r'URI="([^"]+)"', master)
    uris += [line for line in master.splitlines() if line and not line.startswith("#")]
    found = {}
    for uri in uris:
        playlist = out / uri
        entries = parse_media_playlist(playlist.read_text())
        found[uri.split("/")[0]] = Rendition(
            uri.split("/")[0], [d for d, _ in entries], [playlist.parent / u for _, u in entries]
        )
    return found


def joined(r: Rendition, tmp: Path) -> Path:
    """The rendition's segments as one transport stream, byte for byte as a player reads them."""
    path = tmp / f"{r.name}-joined.ts"
    with path.open("wb") as out:
        for segment in r.segments:
            out.write(segment.read_bytes())
    return path


def packets(path: Path, stream: str) -> list[dict[str, str]]:
    args = ["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries"]
    args += ["packet=pts_time,dts_time,duration_time,flags", "-of", "json", str(path)]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return list(json.loads(done.stdout).get("packets", []))


def frame_count(path: Path) -> int:
    args = ["ffprobe", "-v", "error", "-select_streams", "V:0", "-count_frames"]
    args += ["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    # A transport stream lists its streams once per program and once on their own.
    return int(next(line for line in out.split() if line.strip(",").isdigit()).strip(","))


def keyframe_times(path: Path) -> list[float]:
    return [round(float(p["pts_time"]), 4) for p in packets(path, "v:0") if "K" in p.get("flags", "")]


def decode_errors(path: Path) -> str:
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stderr.strip() + ("" if done.returncode == 0 else f" (exit {done.returncode})")


def monotonic(path: Path, stream: str) -> bool:
    dts = [float(p["dts_time"]) for p in packets(path, stream) if p.get("dts_time") not in (None, "N/A")]
    return all(b > a for a, b in itertools.pairwise(dts))


def largest_audio_gap_s(path: Path) -> float:
    """The longest stretch between one audio packet's end and the next one's start."""
    found = packets(path, "a:0")
    gaps = [
        float(b["pts_time"]) - (float(a["pts_time"]) + float(a["duration_time"]))
        for a, b in itertools.pairwise(found)
    ]
    return max(gaps, default=0.0)
