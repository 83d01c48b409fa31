"""`mediajobs media mask|remove-frames|clip|analyze|reprocess|captions|download`: the operations on an asset.

Each starts its work over the API and, with `--wait`, follows it live (the operation's job, then the new
asset's pipeline) and exits non-zero unless it ends well. The argument syntax is in args.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mediajobs.cli import args
from mediajobs.cli.apiclient import ApiClient, ClientError
from mediajobs.cli.common import ApiCommand, ApiGroup, after_create, connect, print_table
from mediajobs.cli.download import download_file
from mediajobs.cli.progress import describe_error, print_json, report_job, report_media, wait_for_job
from mediajobs.jobs import states
from mediajobs.media.titles import clock

WAIT_HELP = "Follow the job and the new asset's pipeline live; exit non-zero unless it is ready."
PIPELINE_HELP = "Comma-separated steps to run on the new asset (default: all), e.g. hls,thumbnail."


def _clock(seconds: float | None) -> str:
    return "the end" if seconds is None else clock(seconds)


def describe_operation(source: dict[str, Any]) -> str | None:
    """What made a derived asset, from its `source` ("mask: 10,20 100x50 from 0:02 to 0:05, black; sound
    bleeped from 0:01 to 0:02")."""
    kind = source.get("type")
    if kind == "mask":
        regions = [
            f"{r['x']},{r['y']} {r['w']}x{r['h']} from {_clock(r.get('start') or 0)} "
            f"to {_clock(r.get('end'))}, {r.get('style', 'blur')}"
            for r in source.get("regions") or []
        ]
        sound = {"mute": ["sound muted"], "remove": ["sound removed"]}.get(source.get("audio") or "keep", [])
        sound += [
            f"sound {'bleeped' if r.get('style') == 'bleep' else 'muted'} from {_clock(r['start'])} "
            f"to {_clock(r['end'])}"
            for r in source.get("audio_ranges") or []
        ]
        return "mask: " + "; ".join(regions + sound)
    if kind == "remove_frames":
        ranges = [f"{_clock(r['start'])} to {_clock(r['end'])}" for r in source.get("ranges") or []]
        return "frames removed: " + "; ".join(ranges)
    if kind == "clip":
        crop = source.get("crop")
        cropped = f", cropped to {crop['aspect']} around x={crop.get('x', 0.5):g}" if crop else ""
        return f"clip: {_clock(source['start'])} to {_clock(source['end'])}{cropped}"
    return None


def _body(pipeline: list[str] | None, **fields: Any) -> dict[str, Any]:
    return {**fields, **({"pipeline": pipeline} if pipeline is not None else {})}


def _derive(media_id: str, operation: str, body: dict[str, Any], *, wait: bool, as_json: bool) -> None:
    with connect() as client:
        after_create(client, client.media_operate(media_id, operation, body), wait=wait, as_json=as_json)


@click.command("mask", cls=ApiCommand)
@click.argument("media_id")
@click.option(
    "--region",
    "regions",
    multiple=True,
    callback=args.regions_option,
    metavar="x,y,w,h[,start[,end]][:style]",
    help="A rectangle in source pixels, masked from start to end (seconds or m:ss; default: all of it) "
    f"with style {', '.join(args.STYLES)} (default blur). Repeat for more regions.",
)
@click.option(
    "--audio",
    type=click.Choice(["keep", "mute", "remove"]),
    help="The whole sound: keep it (default), mute it (silence throughout) or remove the track.",
)
@click.option(
    "--audio-range",
    "audio_ranges",
    multiple=True,
    callback=args.audio_ranges_option,
    metavar="START-END[:style]",
    help="Seconds (or m:ss) of the sound to silence (mute, the default) or cover with a 1 kHz tone (bleep), "
    "the end excluded, exact to the sample. Repeat for more ranges.",
)
@click.option("--pipeline", callback=args.pipeline_option, help=PIPELINE_HELP)
@click.option("--wait", is_flag=True, help=WAIT_HELP)
@click.option("--json", "as_json", is_flag=True)
def mask(
    media_id: str,
    regions: list[dict[str, Any]],
    audio: str | None,
    audio_ranges: list[dict[str, Any]],
    pipeline: list[str] | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Blur, black out or pixelate regions of MEDIA_ID, and mute, bleep or remove its sound, into a new asset.

    \b
    mediajobs media mask ID --region 10,20,320,180               # blur, the whole time
    mediajobs media mask ID --region 10,20,320,180,2,5:black     # black from 2 s to 5 s
    mediajobs media mask ID --region 0,0,64,64,1:05,end:pixelate # from 1:05 to the end
    mediajobs media mask ID --audio-range 12-13.5:bleep          # bleep the sound from 12 s to 13.5 s
    mediajobs media mask ID --region 10,20,320,180 --audio mute  # and silence the whole sound
    """
    if not regions and not audio_ranges and audio in (None, "keep"):
        raise click.UsageError(
            "give --region, --audio-range, or --audio mute|remove: this mask would change nothing"
        )
    if audio_ranges and audio in ("mute", "remove"):
        raise click.UsageError(f"--audio-range edits the kept sound; leave it out with --audio {audio}")
    body: dict[str, Any] = {"regions": regions}
    if audio is not None:
        body["audio"] = audio
    if audio_ranges:
        body["audio_ranges"] = audio_ranges
    _derive(media_id, "mask", _body(pipeline, **body), wait=wait, as_json=as_json)


@click.command("remove-frames", cls=ApiCommand)
@click.argument("media_id")
@click.option(
    "--range",
    "ranges",
    multiple=True,
    required=True,
    callback=args.ranges_option,
    metavar="START-END",
    help="Seconds (or m:ss) to cut out, the end excluded, e.g. 1.5-3.0. Repeat for more ranges.",
)
@click.option("--pipeline", callback=args.pipeline_option, help=PIPELINE_HELP)
@click.option("--wait", is_flag=True, help=WAIT_HELP)
@click.option("--json", "as_json", is_flag=True)
def remove_frames(
    media_id: str, ranges: list[dict[str, float]], pipeline: list[str] | None, wait: bool, as_json: bool
) -> None:
    """Cut time ranges out of MEDIA_ID into a new asset (sound stays in sync).

    \b
    mediajobs media remove-frames ID --range 10-12 --range 0:31-0:32.5
    """
    _derive(media_id, "remove-frames", _body(pipeline, ranges=ranges), wait=wait, as_json=as_json)


@click.command("clip", cls=ApiCommand)
@click.argument("media_id")
@click.option(
    "--range",
    "span",
    required=True,
    callback=args.range_option,
    metavar="START-END",
    help="The part to keep, in seconds (or m:ss), the end excluded, e.g. 20-30.",
)
@click.option("--crop", callback=args.crop_option, metavar="ASPECT[@X]", help=args.CROP_FORM)
@click.option("--pipeline", callback=args.pipeline_option, help=PIPELINE_HELP)
@click.option("--wait", is_flag=True, help=WAIT_HELP)
@click.option("--json", "as_json", is_flag=True)
def clip(
    media_id: str,
    span: dict[str, float],
    crop: dict[str, Any] | None,
    pipeline: list[str] | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Keep the frames of a range of MEDIA_ID as a new asset, cropped to an aspect if asked.

    \b
    mediajobs media clip ID --range 20-30
    mediajobs media clip ID --range 1:00-1:15 --crop 9:16@0.4
    """
    _derive(media_id, "clip", _body(pipeline, **span, crop=crop), wait=wait, as_json=as_json)


@click.command("analyze", cls=ApiCommand)
@click.argument("media_id")
@click.option("--wait", is_flag=True, help="Follow the analysis live and print what it found.")
@click.option("--json", "as_json", is_flag=True)
def analyze(media_id: str, wait: bool, as_json: bool) -> None:
    """Find scenes, black stretches, silences, freezes and the loudness of MEDIA_ID."""
    with connect() as client:
        job = client.media_operate(media_id, "analyze")["job"]
        if wait:
            report_job(wait_for_job(client, job), as_json=as_json)
        elif as_json:
            print_json(job)
        else:
            click.echo(f"job {job['id']} {job['state']}; `mediajobs jobs watch {job['id']}` follows it")


@click.command("reprocess", cls=ApiCommand)
@click.argument("media_id")
@click.option(
    "--pipeline", callback=args.pipeline_option, help="Steps to rebuild (default: the asset's own)."
)
@click.option(
    "--wait", is_flag=True, help="Follow the rebuild live; exit non-zero unless the asset is ready."
)
@click.option("--json", "as_json", is_flag=True)
def reprocess(media_id: str, pipeline: list[str] | None, wait: bool, as_json: bool) -> None:
    """Rebuild the stream, thumbnail, downloads and storyboard of MEDIA_ID from its original."""
    with connect() as client:
        job = client.media_operate(media_id, "reprocess", _body(pipeline))["job"]
        if wait:
            done = wait_for_job(client, job)
            if done["state"] != states.SUCCEEDED:
                report_job(done, as_json=as_json)  # says how it ended, exits non-zero
            report_media(client, client.media(media_id), as_json=as_json)
        elif as_json:
            print_json(job)
        else:
            click.echo(f"job {job['id']} {job['state']}; the current stream plays until the new one is done")


@click.group("captions", cls=ApiGroup)
def captions() -> None:
    """List, add and remove the caption tracks of an asset."""


@captions.command("ls")
@click.argument("media_id")
@click.option("--json", "as_json", is_flag=True)
def captions_ls(media_id: str, as_json: bool) -> None:
    """The caption tracks of MEDIA_ID, oldest first."""
    with connect() as client:
        tracks = client.captions(media_id)
    if as_json:
        print_json({"items": tracks})
        return
    rows = [[t["id"], t["language"], t["label"], str(t["cues"])] for t in tracks]
    print_table(["ID", "LANGUAGE", "LABEL", "CUES"], rows)


@captions.command("add")
@click.argument("media_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--language", required=True, help="A BCP 47 tag: en, pt-BR, ...")
@click.option("--label", help="The name players show (default: from the language).")
@click.option("--json", "as_json", is_flag=True)
def captions_add(media_id: str, file: Path, language: str, label: str | None, as_json: bool) -> None:
    """Add an SRT or WebVTT FILE to MEDIA_ID as a caption track."""
    with connect() as client:
        track = client.caption_add(media_id, file, language=language, label=label)
    if as_json:
        print_json(track)
    else:
        click.echo(f"caption track {track['id']} ({track['label']}, {track['cues']} cues) added")


@captions.command("rm")
@click.argument("media_id")
@click.argument("caption_id")
def captions_rm(media_id: str, caption_id: str) -> None:
    """Remove the caption track CAPTION_ID of MEDIA_ID."""
    with connect() as client:
        client.caption_delete(media_id, caption_id)
    click.echo(f"caption track {caption_id} removed")


@click.command("download", cls=ApiCommand)
@click.argument("media_id")
@click.option(
    "--type",
    "kind",
    type=click.Choice(["mp4", "audio", "original"]),
    default="mp4",
    show_default=True,
    help="The MP4 of the top rung (or --height), the sound as M4A, or the file as uploaded.",
)
@click.option("--height", type=click.IntRange(min=1), help="The MP4 of this rung of the ladder (e.g. 480).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to write it (default: its own name, in this directory; '-' for stdout).",
)
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
def download(media_id: str, kind: str, height: int | None, output: Path | None, force: bool) -> None:
    """Download a file of MEDIA_ID, with a progress bar; made first (and waited for) if it is not yet."""
    if height is not None and kind != "mp4":
        raise click.BadParameter(
            "--height picks a rung of the MP4 downloads; leave it out for audio or original"
        )
    with connect() as client:
        entry = _ready_download(client, media_id, kind, height)
        download_file(client, entry, output=output, force=force)


def _ready_download(client: ApiClient, media_id: str, kind: str, height: int | None) -> dict[str, Any]:
    """The asset's `downloads` entry of that type (and height), made and waited for when needed."""
    entry = _find(client.media(media_id), kind, height)
    if entry is None or not entry["ready"]:
        if kind == "original":
            raise ClientError(f"media {media_id} has no original file to download (yet)")
        if entry is None:
            body = {"type": kind, **({"height": height} if height is not None else {})}
            job = client.media_operate(media_id, "downloads", body)["job"]
        else:
            job = _downloads_job(client, client.media(media_id))
        if job is not None:
            click.echo(f"making the {kind} download first (job {job['id']})", err=True)
            done = wait_for_job(client, job)
            if done["state"] != states.SUCCEEDED:
                said = f": {describe_error(done['error'])}" if done.get("error") else ""
                raise ClientError(f"making the {kind} download {done['state']}{said}")
        entry = _find(client.media(media_id), kind, height)
        if entry is None or not entry["ready"]:
            raise ClientError(f"the {kind} download of media {media_id} is not ready; try again in a moment")
    return entry


def _find(media: dict[str, Any], kind: str, height: int | None) -> dict[str, Any] | None:
    if media["state"] != "ready" and kind != "original":
        state = media["state"]
        raise ClientError(f"media {media['id']} is {state}; downloads are made once it is ready")
    entries = [d for d in media.get("downloads") or [] if d["type"] == kind]
    if height is not None:
        entries = [d for d in entries if d.get("height") == height]
    elif kind == "mp4":
        entries.sort(key=lambda d: d.get("height") or 0, reverse=True)
    return entries[0] if entries else None


def _downloads_job(client: ApiClient, media: dict[str, Any]) -> dict[str, Any] | None:
    """The unfinished media.downloads job of the asset, if one is making its files now."""
    for job_id in reversed(media.get("jobs") or []):
        job = client.job(job_id)
        if job["kind"] == "media.downloads" and job["state"] in states.UNFINISHED:
            return job
    return None


COMMANDS: list[click.Command] = [mask, remove_frames, clip, analyze, reprocess, captions, download]
