"""`mediajobs media download`: one file of an asset to disk (or stdout), with a progress bar on stderr.

The file goes to NAME.part first and becomes NAME when whole: an interrupted download leaves no file that
looks finished. Without `-o` the name is the one the API gives (`holiday-720p.mp4`), in this directory.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote

import click
import httpx

from mediajobs.cli.apiclient import ApiClient, ClientError
from mediajobs.cli.progress import TransferProgress

_STAR = re.compile(r"filename\*\s*=\s*UTF-8''([^;]+)", re.IGNORECASE)
_PLAIN = re.compile(r'filename\s*=\s*"?([^";]+)"?', re.IGNORECASE)


def attachment_name(disposition: str | None, fallback: str) -> str:
    """The file name a Content-Disposition gives (RFC 6266, with RFC 5987's filename*), made safe: no
    folders, no control characters, not hidden."""
    found = _STAR.search(disposition or "") or _PLAIN.search(disposition or "")
    name = unquote(found.group(1)) if found else ""
    name = re.sub(r"[\x00-\x1f\x7f/\\]", "_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return name or fallback


def _with_download(url: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}download=1"


def download_file(client: ApiClient, entry: dict[str, Any], *, output: Path | None, force: bool) -> None:
    """Download a `downloads` entry of the media JSON to `output` (a name of its own when None, '-' for
    stdout); ClientError when the target exists (without `force`)."""
    to_stdout = output is not None and str(output) == "-"
    if output is not None and not to_stdout and output.exists() and not force:
        raise ClientError(f"{output} exists; pass --force to replace it, or -o another name")
    bar = TransferProgress(f"{entry['type']}", int(entry.get("size") or 0), verb="download")
    state: dict[str, Any] = {}

    def open_output(response: httpx.Response) -> BinaryIO:
        if to_stdout:
            return sys.stdout.buffer
        fallback = f"download.{'m4a' if entry['type'] == 'audio' else 'mp4'}"
        target = output or Path(attachment_name(response.headers.get("content-disposition"), fallback))
        if target.exists() and not force:
            raise ClientError(f"{target} exists; pass --force to replace it, or -o another name")
        length = response.headers.get("content-length")
        if length and length.isdigit():
            bar.total_bytes = int(length)
        bar.label = target.name
        part = target.with_name(target.name + ".part")
        state.update(target=target, part=part, file=part.open("wb"))
        return state["file"]  # type: ignore[no-any-return]

    def clean_up() -> None:
        bar.close()
        if "file" in state:
            state["file"].close()
            state["part"].unlink(missing_ok=True)

    try:
        client.download(_with_download(entry["url"]), open_output=open_output, on_bytes=bar.advance)
    except KeyboardInterrupt:
        clean_up()
        click.echo("download interrupted; nothing of it was kept", err=True)
        raise click.exceptions.Exit(130) from None
    except BaseException:
        clean_up()
        raise
    bar.close()
    if "file" in state:
        state["file"].close()
        state["part"].replace(state["target"])
        click.echo(str(state["target"]))
    else:
        sys.stdout.buffer.flush()
