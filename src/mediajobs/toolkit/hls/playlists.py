"""HLS playlists (RFC 8216) of a ladder: media playlists from its grid, the master that lists renditions.

Written here rather than by ffmpeg's hls muxer because every rendition and chunk shares one grid: the
EXTINF of segment N is the same number in every playlist, and a playlist can be written for segments that
are still being encoded elsewhere. Bandwidths are measured from segment sizes, or are a rung's cap while
its segments do not exist yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mediajobs.toolkit.hls import grid as grids
from mediajobs.toolkit.hls.ladder import AUDIO, AUDIO_BITRATE, Ladder

MASTER = "master.m3u8"
SEGMENT_NAME = "seg_{:05d}.ts"
PLAYLIST = "index.m3u8"
AUDIO_GROUP = "audio"
SUBTITLES_GROUP = "subs"


def media_playlist(
    durations: Sequence[float],
    *,
    target_duration: int,
    complete: bool = True,
    first: int = 0,
    uri: str | None = None,
) -> str:
    """A media playlist of segments `first`.. with these durations.

    `complete`: a VOD playlist that ends. Otherwise a growing EVENT playlist (segments are only ever
    appended; players refresh it and may not seek past its last segment) starting at its beginning.
    """
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target_duration}"]
    if first:
        # Only when it is not the default 0: Chromium 156's native player refuses a playlist without
        # EXT-X-ENDLIST that has the tag (DEMUXER_ERROR_COULD_NOT_PARSE), even when it says 0.
        lines += [f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    lines += ["#EXT-X-PLAYLIST-TYPE:VOD" if complete else "#EXT-X-PLAYLIST-TYPE:EVENT"]
    lines += ["#EXT-X-INDEPENDENT-SEGMENTS"]
    if not complete:
        # Players treat an EVENT playlist as live and start near its end unless told otherwise.
        lines += ["#EXT-X-START:TIME-OFFSET=0,PRECISE=YES"]
    for i, duration in enumerate(durations, start=first):
        lines += [f"#EXTINF:{duration:.6f},", uri if uri is not None else SEGMENT_NAME.format(i)]
    if complete:
        lines += ["#EXT-X-ENDLIST"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class VariantEntry:
    """One EXT-X-STREAM-INF line of a master playlist."""

    uri: str
    bandwidth: int
    codecs: str
    average_bandwidth: int | None = None
    resolution: tuple[int, int] | None = None
    frame_rate: float | None = None


def master_playlist(variants: Sequence[VariantEntry], *, audio_uri: str | None = None) -> str:
    """The master: video variants sharing one audio rendition (`audio_uri`), or audio-only variants."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:4", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio_uri is not None:
        lines += [
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="Audio",DEFAULT=YES,AUTOSELECT=YES,'
            f'URI="{audio_uri}"'
        ]
    for v in variants:
        attrs = [f"BANDWIDTH={v.bandwidth}"]
        if v.average_bandwidth:
            attrs.append(f"AVERAGE-BANDWIDTH={v.average_bandwidth}")
        if v.resolution:
            attrs.append(f"RESOLUTION={v.resolution[0]}x{v.resolution[1]}")
        if v.frame_rate:
            attrs.append(f"FRAME-RATE={v.frame_rate:.3f}")
        attrs.append(f'CODECS="{v.codecs}"')
        if audio_uri is not None:
            attrs.append(f'AUDIO="{AUDIO_GROUP}"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), v.uri]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SubtitleTrack:
    """One EXT-X-MEDIA line of the SUBTITLES group: a name shown to viewers, a language, a playlist."""

    name: str
    language: str
    uri: str


def with_subtitles(master: str, tracks: Sequence[SubtitleTrack]) -> str:
    """`master` with a SUBTITLES rendition group of `tracks` that every variant refers to.

    No track is DEFAULT (captions stay off until a viewer picks one); each is AUTOSELECT, as Apple's HLS
    authoring rules want, and names are made unique within the group as RFC 8216 requires.
    """
    if not tracks:
        return master
    seen: dict[str, int] = {}
    media = []
    for track in tracks:
        name = _quotable(track.name) or track.language
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name} ({seen[name]})"
        media.append(
            f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{SUBTITLES_GROUP}",NAME="{name}",DEFAULT=NO,'
            f'AUTOSELECT=YES,FORCED=NO,LANGUAGE="{_quotable(track.language)}",URI="{_quotable(track.uri)}"'
        )
    lines = master.rstrip("\n").split("\n")
    # After the header tags and any other renditions, before the first variant.
    at = next((i for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF:")), len(lines))
    variants = [
        f'{line},SUBTITLES="{SUBTITLES_GROUP}"' if line.startswith("#EXT-X-STREAM-INF:") else line
        for line in lines[at:]
    ]
    return "\n".join([*lines[:at], *media, *variants]) + "\n"


def _quotable(text: str) -> str:
    """Text fit for a quoted-string attribute: no double quote, no line break (RFC 8216 4.2)."""
    return "".join(" " if c in "\r\n" else "'" if c == '"' else c for c in text).strip()


def subtitle_playlist(uri: str, duration_s: float) -> str:
    """A subtitles media playlist whose one segment, the whole WebVTT file, lasts the whole media."""
    return media_playlist([duration_s], target_duration=max(1, math.ceil(duration_s)), uri=uri)


def parse_media_playlist(text: str) -> list[tuple[float, str]]:
    """(duration, uri) of each segment of a media playlist."""
    result = []
    duration: float | None = None
    for line in text.splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",")[0])
        elif line and not line.startswith("#") and duration is not None:
            result.append((duration, line.strip()))
            duration = None
    return result


def playlist_path(name: str) -> str:
    return f"{name}/{PLAYLIST}"


def bitrates(sizes: Sequence[int], durations: Sequence[float], target_s: float) -> tuple[int, int]:
    """(peak, average) bit/s as RFC 8216 defines them for BANDWIDTH and AVERAGE-BANDWIDTH."""
    spans = [(d, size * 8) for d, size in zip(durations, sizes, strict=True)]
    total_s = sum(d for d, _ in spans)
    average = math.ceil(sum(b for _, b in spans) / total_s) if total_s > 0 else 0
    # Peak: the highest rate of any run of contiguous segments lasting 0.5-1.5 target durations, so a short
    # final segment holding a keyframe does not count as a whole segment's worth.
    peak = 0
    for start in range(len(spans)):
        span_s = span_bits = 0.0
        for d, bits in spans[start:]:
            span_s += d
            span_bits += bits
            if span_s > 1.5 * target_s:
                break
            if span_s >= 0.5 * target_s:
                peak = max(peak, math.ceil(span_bits / span_s))
    return max(peak, average), average


def variant_entries(
    ladder: Ladder, names: Sequence[str], sizes: dict[str, list[int]] | None = None
) -> list[VariantEntry]:
    """Master lines for these renditions: measured bandwidths when their segment `sizes` are known.

    Without sizes (a rendition still being encoded) the bandwidth is its bitrate cap. A video variant's
    bandwidth includes the audio it plays with.
    """
    durations = ladder.grid.durations()
    target = grids.target_duration(ladder.grid)
    audio_peak = audio_average = AUDIO_BITRATE if ladder.audio else 0
    if sizes and AUDIO in sizes:
        audio_peak, audio_average = bitrates(sizes[AUDIO], durations, target)
    entries = []
    by_name = {r.name: r for r in ladder.renditions}
    for name in names:
        r = by_name.get(name)
        if r is None:  # audio only
            entries.append(
                VariantEntry(playlist_path(AUDIO), audio_peak, ladder.codecs[AUDIO], audio_average)
            )
            continue
        if sizes and name in sizes:
            peak, average = bitrates(sizes[name], durations, target)
        else:
            peak = average = r.maxrate
        entries.append(
            VariantEntry(
                playlist_path(name),
                peak + audio_peak,
                ladder.codecs[name],
                average + audio_average,
                (r.width, r.height),
            )
        )
    return entries


def master(ladder: Ladder, names: Sequence[str], sizes: dict[str, list[int]] | None = None) -> str:
    """The master playlist listing these renditions (and the audio rendition they share)."""
    if not ladder.renditions:
        return master_playlist(variant_entries(ladder, [AUDIO], sizes))
    audio_uri = playlist_path(AUDIO) if ladder.audio else None
    return master_playlist(variant_entries(ladder, names, sizes), audio_uri=audio_uri)


def media_playlist_for(ladder: Ladder, *, segments: int | None = None) -> str:
    """A rendition's playlist: complete, or growing with its first `segments` segments."""
    durations = ladder.grid.durations()
    target = grids.target_duration(ladder.grid)
    if segments is None or segments >= len(durations):
        return media_playlist(durations, target_duration=target)
    return media_playlist(durations[:segments], target_duration=target, complete=False)


def variants(
    ladder: Ladder, sizes: dict[str, list[int]] | None, ready: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The `variants` of an asset's hls record: one per video rendition (or the audio), best first."""
    names = ladder.names or [AUDIO]
    found = []
    for entry, name in zip(variant_entries(ladder, names, sizes), names, strict=True):
        r = next((r for r in ladder.renditions if r.name == name), None)
        found.append(
            {
                "height": r.height if r else None,
                "width": r.width if r else None,
                "bandwidth": entry.bandwidth,
                "path": entry.uri,
                "ready": ready is None or name in ready,
            }
        )
    return found
