"""The API client commands: `submit`, `jobs ls|show|cancel|retry|watch`,
`media import|upload|ls|show|rename|rm` (the operations on an asset: media_ops.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from mediajobs.cli import media_ops
from mediajobs.cli.apiclient import ApiClient, ClientError
from mediajobs.cli.common import (
    ApiCommand,
    ApiGroup,
    after_create,
    all_items,
    connect,
    print_fields,
    print_table,
    shorten,
)
from mediajobs.cli.progress import (
    TransferProgress,
    age,
    describe_error,
    format_bytes,
    format_duration,
    print_json,
    report_job,
    wait_for_job,
)
from mediajobs.cli.resumable import ResumableUpload
from mediajobs.jobs import states
from mediajobs.media import states as media_states


def parse_param(text: str) -> tuple[str, Any]:
    """`key=value`, the value read as JSON when it is JSON (`x=1` → 1, `flags=[1,2]` → a list), else text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"{text!r} is not key=value")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def _params(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> dict[str, Any]:
    return dict(parse_param(value) for value in values)


def job_row(job: dict[str, Any], titles: dict[str, str]) -> list[str]:
    return [
        job["id"],
        job["kind"],
        job["state"],
        f"{float(job.get('progress') or 0):.0f}%",
        shorten(str(job.get("stage") or ""), 40),
        age(job.get("created_at")),
        shorten(titles.get(job.get("media_id") or "", ""), 40),
    ]


def titles_of(client: ApiClient, media_ids: Sequence[str | None]) -> dict[str, str]:
    """The title of each asset (once per asset); "(deleted)" for one that is gone."""
    found: dict[str, str] = {}
    for media_id in dict.fromkeys(m for m in media_ids if m):
        try:
            found[media_id] = str(client.media(media_id).get("title") or "")
        except ClientError as exc:
            if exc.status != 404:
                raise
            found[media_id] = "(deleted)"
    return found


# Kinds the API runs for the media commands; they are not submitted as jobs of their own.
MEDIA_COMMANDS = {
    "media.import": "mediajobs media import URL",
    "media.process": "mediajobs media upload FILE, or mediajobs media reprocess ID",
    "media.mask": "mediajobs media mask ID --region x,y,w,h[,start[,end]][:style]",
    "media.remove_frames": "mediajobs media remove-frames ID --range START-END",
    "media.clip": "mediajobs media clip ID --range START-END [--crop 9:16]",
    "media.analyze": "mediajobs media analyze ID",
    "media.downloads": "mediajobs media download ID [--type mp4|audio|original]",
}


@click.command(cls=ApiCommand)
@click.argument("kind")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    callback=_params,
    metavar="KEY=VALUE",
    help="A job parameter; the value is read as JSON when it parses (x=1, tags='[\"a\"]').",
)
@click.option("--priority", type=click.IntRange(0, 9), help="0 (lowest) to 9 (most urgent).")
@click.option(
    "--max-attempts", type=click.IntRange(min=1), help="Attempts before a transient failure is final."
)
@click.option("--wait", is_flag=True, help="Follow the job live; exit non-zero unless it succeeds.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
def submit(
    kind: str,
    params: dict[str, Any],
    priority: int | None,
    max_attempts: int | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Submit a job of KIND."""
    if kind in MEDIA_COMMANDS:
        raise click.UsageError(
            f"{kind} jobs are started by the media commands, not submitted: use `{MEDIA_COMMANDS[kind]}` "
            "(`mediajobs media --help` lists them)"
        )
    if kind.startswith("media."):
        raise click.UsageError(
            f"{kind} jobs are run by mediajobs itself for the media commands (`mediajobs media --help`)"
        )
    with connect() as client:
        job = client.jobs_submit(kind, params, priority=priority, max_attempts=max_attempts)
        if wait:
            report_job(wait_for_job(client, job), as_json=as_json)
        elif as_json:
            print_json(job)
        else:
            click.echo(f"job {job['id']} {job['state']} ({job['kind']}, queue {job.get('queue', '?')})")


@click.group(cls=ApiGroup)
def jobs() -> None:
    """List, inspect, cancel, retry and watch jobs."""


@jobs.command("ls")
@click.option("--state", type=click.Choice(states.STATES))
@click.option("--kind")
@click.option("--media-id")
@click.option("--limit", type=click.IntRange(1, 500), help="How many (with --all: per page).")
@click.option("--all", "follow", is_flag=True, help="Every page, not only the newest.")
@click.option("--json", "as_json", is_flag=True)
def jobs_ls(
    state: str | None, kind: str | None, media_id: str | None, limit: int | None, follow: bool, as_json: bool
) -> None:
    """List jobs, newest first."""
    with connect() as client:
        items, more = all_items(
            lambda **page: client.jobs_list(state=state, kind=kind, media_id=media_id, **page),
            limit=limit,
            follow=follow,
        )
        if as_json:
            print_json({"items": items, "next_cursor": more})
            return
        titles = titles_of(client, [job.get("media_id") for job in items])
    headers = ["ID", "KIND", "STATE", "PROGRESS", "STAGE", "AGE", "MEDIA"]
    print_table(headers, [job_row(job, titles) for job in items])
    if more:
        click.echo("(more jobs: --all lists every page)", err=True)


@jobs.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
def jobs_show(job_id: str, as_json: bool) -> None:
    """Show one job."""
    with connect() as client:
        job = client.job(job_id)
        if as_json:
            print_json(job)
            return
        title = titles_of(client, [job.get("media_id")]).get(job.get("media_id") or "")
    eta = job.get("eta_seconds")
    print_fields(
        [
            ("id", job["id"]),
            ("kind", job["kind"]),
            ("state", job["state"]),
            ("progress", f"{float(job.get('progress') or 0):.1f}%  {job.get('stage') or ''}".rstrip()),
            ("eta", format_duration(eta) if eta is not None else None),
            ("attempt", f"{job.get('attempt')}/{job.get('max_attempts')}"),
            ("queue", job.get("queue")),
            ("priority", str(job.get("priority"))),
            ("media", f"{job['media_id']}  {title}" if job.get("media_id") else None),
            ("params", job.get("params")),
            ("result", job.get("result")),
            ("error", describe_error(job["error"]) if job.get("error") else None),
            ("cancel", "requested" if job.get("cancel_requested") else None),
            ("created", job.get("created_at")),
            ("started", job.get("started_at")),
            ("finished", job.get("finished_at")),
        ]
    )


@jobs.command("cancel")
@click.argument("job_id")
@click.option("--wait", is_flag=True, help="Wait until its work has stopped; exit non-zero unless cancelled.")
def jobs_cancel(job_id: str, wait: bool) -> None:
    """Cancel a job: at once when queued, as soon as its work stops when running."""
    with connect() as client:
        job = client.job_cancel(job_id)
        if wait:
            report_job(wait_for_job(client, job), as_json=False, expect=states.CANCELLED)
        elif job.get("cancel_requested") and job["state"] not in states.TERMINAL:
            click.echo(f"job {job['id']} {job['state']}: cancel requested")
        else:
            click.echo(f"job {job['id']} {job['state']}")


@jobs.command("retry")
@click.argument("job_id")
@click.option("--wait", is_flag=True, help="Follow the new attempt; exit non-zero unless it succeeds.")
@click.option("--json", "as_json", is_flag=True)
def jobs_retry(job_id: str, wait: bool, as_json: bool) -> None:
    """Run a failed or cancelled job again, as a new attempt."""
    with connect() as client:
        job = client.job_retry(job_id)
        if wait:
            report_job(wait_for_job(client, job), as_json=as_json)
        elif as_json:
            print_json(job)
        else:
            click.echo(
                f"job {job['id']} {job['state']} (attempt {job.get('attempt')}/{job.get('max_attempts')})"
            )


@jobs.command("watch")
@click.argument("job_id")
def jobs_watch(job_id: str) -> None:
    """Follow a job live until it ends; exit non-zero unless it succeeds."""
    with connect() as client:
        report_job(wait_for_job(client, client.job(job_id)), as_json=False)


def media_source(media: dict[str, Any]) -> str:
    source, original = media.get("source") or {}, media.get("original") or {}
    if media.get("parent_id"):
        return f"{str(source.get('type', 'derived')).replace('_', '-')} of {str(media['parent_id'])[:8]}"
    return shorten(str(source.get("url") or original.get("filename") or source.get("type") or "-"), 50)


def media_row(media: dict[str, Any]) -> list[str]:
    probe, original = media.get("probe") or {}, media.get("original") or {}
    duration = format_duration(probe["duration"]) if probe.get("duration") is not None else "-"
    size = format_bytes(original["size"]) if original.get("size") is not None else "-"
    created = age(media.get("created_at"))
    title = shorten(str(media.get("title") or ""), 40)
    return [media["id"], media["state"], title, duration, size, created, media_source(media)]


def media_fields(client: ApiClient, item: dict[str, Any]) -> list[tuple[str, Any]]:
    probe, hls = item.get("probe") or {}, item.get("hls") or {}
    _, _, _, duration, size, _, source = media_row(item)
    video = f"{probe['width']}x{probe.get('height')} {probe.get('fps')} fps" if probe.get("width") else ""
    codecs = "/".join(str(probe[name]) for name in ("video_codec", "audio_codec") if probe.get(name))
    return [
        ("id", item["id"]),
        ("title", item.get("title")),
        ("state", item["state"]),
        ("source", source),
        ("parent", item.get("parent_id")),
        ("made by", media_ops.describe_operation(item.get("source") or {})),
        ("size", size.strip("-")),
        ("probe", "  ".join(part for part in (duration.strip("-"), video, codecs) if part)),
        ("hls", client.absolute_url(hls["master_url"]) if hls.get("master_url") else None),
        ("renditions", ", ".join(f"{v.get('height')}p" for v in hls.get("variants") or [])),
        ("thumbnail", client.absolute_url(item["thumbnail_url"]) if item.get("thumbnail_url") else None),
        ("error", describe_error(item["error"]) if item.get("error") else None),
        ("jobs", "\n".join(item.get("jobs") or [])),
        ("created", item.get("created_at")),
    ]


@click.group(cls=ApiGroup)
def media() -> None:
    """Import, upload, list, inspect, rename and delete media assets, and work on them (mask, cut, clip,
    analyze, reprocess, captions, download)."""


@media.command("import")
@click.argument("url")
@click.option("--pipeline", help="Comma-separated steps to run after the import, e.g. hls,thumbnail.")
@click.option("--wait", is_flag=True, help="Follow the import and pipeline; exit non-zero unless ready.")
@click.option("--json", "as_json", is_flag=True)
def media_import(url: str, pipeline: str | None, wait: bool, as_json: bool) -> None:
    """Import a video or audio file from URL."""
    steps = None if pipeline is None else [step.strip() for step in pipeline.split(",") if step.strip()]
    with connect() as client:
        after_create(client, client.media_import(url, pipeline=steps), wait=wait, as_json=as_json)


@media.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Continue this file's upload from an earlier run that was interrupted (same file, unchanged).",
)
@click.option("--wait", is_flag=True, help="Follow the import and pipeline; exit non-zero unless ready.")
@click.option("--json", "as_json", is_flag=True)
def media_upload(file: Path, resume: bool, wait: bool, as_json: bool) -> None:
    """Upload a video or audio FILE, resumably (tus): a dropped connection is retried, and an interrupted
    upload continues where it stopped when the command runs again."""
    bar = TransferProgress(file.name, file.stat().st_size)
    with connect() as client:
        try:
            media_id = ResumableUpload(client, file, resume=resume, on_progress=bar.at).run()
        except KeyboardInterrupt:
            bar.close()
            click.echo("upload interrupted; run the same command again to resume it", err=True)
            raise click.exceptions.Exit(130) from None
        finally:
            bar.close()
        media = client.media(media_id)
        job = client.job(media["jobs"][-1]) if media.get("jobs") else None
        if job is None:
            raise ClientError(f"media {media_id} has no processing job; it is {media['state']}")
        after_create(client, {"media": media, "job": job}, wait=wait, as_json=as_json)


@media.command("ls")
@click.option("--state", type=click.Choice(media_states.STATES))
@click.option("-q", "--search", help="Only assets whose title holds this text (any case).")
@click.option("--limit", type=click.IntRange(1, 500), help="How many (with --all: per page).")
@click.option("--all", "follow", is_flag=True, help="Every page, not only the newest.")
@click.option("--json", "as_json", is_flag=True)
def media_ls(state: str | None, search: str | None, limit: int | None, follow: bool, as_json: bool) -> None:
    """List media assets, newest first."""
    with connect() as client:
        items, more = all_items(
            lambda **page: client.media_list(state=state, q=search, **page), limit=limit, follow=follow
        )
    if as_json:
        print_json({"items": items, "next_cursor": more})
        return
    headers = ["ID", "STATE", "TITLE", "DURATION", "SIZE", "AGE", "SOURCE"]
    print_table(headers, [media_row(item) for item in items])
    if more:
        click.echo("(more media: --all lists every page)", err=True)


@media.command("show")
@click.argument("media_id")
@click.option("--json", "as_json", is_flag=True)
def media_show(media_id: str, as_json: bool) -> None:
    """Show one media asset, with absolute URLs for its HLS master playlist and thumbnail."""
    with connect() as client:
        item = client.media(media_id)
        if as_json:
            print_json(item)
            return
        print_fields(media_fields(client, item))


@media.command("rename")
@click.argument("media_id")
@click.argument("title")
@click.option("--json", "as_json", is_flag=True)
def media_rename(media_id: str, title: str, as_json: bool) -> None:
    """Give an asset a new TITLE (plain text, up to 200 characters)."""
    with connect() as client:
        item = client.media_rename(media_id, title)
    if as_json:
        print_json(item)
    else:
        click.echo(f"media {item['id']} is now titled {item['title']!r}")


@media.command("rm")
@click.argument("media_id")
def media_rm(media_id: str) -> None:
    """Delete a media asset: cancel its jobs and remove every stored file."""
    with connect() as client:
        client.media_delete(media_id)
    click.echo(f"media {media_id} deleting")


for _command in media_ops.COMMANDS:
    media.add_command(_command)

COMMANDS: list[click.Command] = [submit, jobs, media]
