"""The README's tour: every `mediajobs` line in it is a command that exists, with arguments it accepts, and
the tour shows every media command."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from mediajobs.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"
SOME_ID = "0b3e6f2c-9a41-4d8e-8c55-6f0e2a7d1b90"


def tour_commands() -> list[list[str]]:
    """The `mediajobs ...` lines of the tour, comments cut off, placeholders (`<id>`) filled."""
    text = README.read_text(encoding="utf-8")
    tour = text.split("## A 5-minute tour", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", tour, flags=re.S):
        for line in block.splitlines():
            if line.startswith("mediajobs "):
                commands.append(shlex.split(re.sub(r"<[a-z_]+>", SOME_ID, line), comments=True)[1:])
    return commands


def parse(argv: list[str]) -> click.Context:
    """What the CLI makes of `mediajobs ARGV` without running it: each group resolved to its command, the
    command's arguments and options parsed and checked (types, required ones, the region/range syntax)."""
    command: click.Command = cli
    path = ["mediajobs"]
    while isinstance(command, click.Group):
        assert argv, f"{' '.join(path)} needs a command"
        name, *argv = argv
        found = command.get_command(click.Context(command), name)
        assert found is not None, f"{' '.join(path)} has no command {name!r}"
        command, path = found, [*path, name]
    return command.make_context(" ".join(path), argv)


@pytest.mark.parametrize("argv", tour_commands(), ids=lambda argv: " ".join(argv[:3]))
def test_each_command_of_the_tour_is_one_the_cli_accepts(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (a for a in argv if a.startswith("./")):  # the files the tour works on, as a reader has them
        (tmp_path / name).write_bytes(b"")
    parse(argv)


def test_the_tour_shows_every_media_command() -> None:
    media = cli.commands["media"]
    assert isinstance(media, click.Group)
    shown = {argv[1] for argv in tour_commands() if argv[:1] == ["media"]}
    missing = sorted(set(media.commands) - shown)
    assert not missing, f"the README's tour shows no `mediajobs media {'|'.join(missing)}`"


@pytest.mark.parametrize(
    "argv",
    [
        ["media", "masks", SOME_ID],  # no such command
        ["media", "mask", SOME_ID, "--region", "10,20,320"],  # a region needs x,y,w,h
        ["media", "remove-frames", SOME_ID, "--range", "12"],  # a range needs its end
        ["media", "download", SOME_ID, "--type", "gif"],
    ],
)
def test_the_check_refuses_what_the_cli_would_refuse(argv: list[str]) -> None:
    with pytest.raises((AssertionError, click.UsageError)):
        parse(argv)
