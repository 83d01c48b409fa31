"""What every API client command shares: errors as messages, the connection, tables and pages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from mediajobs.cli.apiclient import ApiClient, ClientError
from mediajobs.cli.progress import print_json, report_media, wait_for_media
from mediajobs.config import get_settings


class ApiCommand(click.Command):
    """A command that talks to the API: its errors become one message and an exit code, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClientError as exc:
            click.echo(exc.render(), err=True)
            raise click.exceptions.Exit(exc.exit_code) from None


class ApiGroup(click.Group):
    command_class = ApiCommand


def connect() -> ApiClient:
    return ApiClient.from_settings(get_settings())


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def print_fields(fields: Sequence[tuple[str, Any]]) -> None:
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        if value is None or value == "":
            continue
        text = value if isinstance(value, str) else json.dumps(value, indent=2)
        click.echo(f"{name.ljust(width)}  {text.replace(chr(10), chr(10) + ' ' * (width + 2))}")


def all_items(fetch_page: Any, *, limit: int | None, follow: bool) -> tuple[list[dict[str, Any]], str | None]:
    """One page, or with `follow` every page (`limit` then sizes the pages)."""
    page = fetch_page(limit=limit or (500 if follow else None), cursor=None)
    items = list(page["items"])
    while follow and page.get("next_cursor"):
        page = fetch_page(limit=limit or 500, cursor=page["next_cursor"])
        items.extend(page["items"])
    return items, None if follow else page.get("next_cursor")


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def after_create(client: ApiClient, created: dict[str, Any], *, wait: bool, as_json: bool) -> None:
    """Report a new asset and its job (`{"media", "job"}`); with `wait`, follow it until it is ready."""
    media, job = created["media"], created["job"]
    if wait:
        report_media(client, wait_for_media(client, media, job), as_json=as_json)
    elif as_json:
        print_json(created)
    else:
        title = f" {media['title']!r}" if media.get("title") else ""
        click.echo(f"media {media['id']}{title} {media['state']}; job {job['id']} {job['state']}")
