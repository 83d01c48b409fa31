"""The `mediajobs` command: server parts (up, api, worker, migrate, doctor) and API client commands."""

from __future__ import annotations

import click

from mediajobs.cli import client, server


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mediajobs")
def cli() -> None:
    """mediajobs: background media jobs with live progress."""


for command in (*server.COMMANDS, *client.COMMANDS):
    cli.add_command(command)


def main() -> None:
    cli()
