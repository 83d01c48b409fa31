"""Titles: made from file names, page titles and operations; searched literally, in any case, on both
backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediajobs.config import Settings
from mediajobs.db.migrate import migrate
from mediajobs.db.session import get_db
from mediajobs.jobs.hooks import Services
from mediajobs.media import assets, titles
from tests.conftest import BACKENDS, database_url


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("holiday.mp4", "holiday"),
        ("Holiday 2024.final.MOV", "Holiday 2024.final"),
        ("C:\\Users\\me\\Videos\\talk.mkv", "talk"),
        ("../../etc/passwd", "passwd"),
        ("no-extension", "no-extension"),
        ("archive.tar.gzipped-long", "archive.tar.gzipped-long"),
        (".mp4", ".mp4"),
        ("", "Untitled"),
        (None, "Untitled"),
        ("tab\there\nnew\u202eline.mp4", "tab here new line"),
    ],
)
def test_an_upload_is_titled_by_its_file_name_without_the_extension(name: str | None, title: str) -> None:
    assert titles.from_filename(name) == title


def test_an_import_is_titled_by_the_last_part_of_its_url_until_its_page_title_is_known() -> None:
    assert titles.from_url("https://videos.example/talks/Opening%20keynote.mp4?x=1") == "Opening keynote"
    assert titles.from_url("https://videos.example/") == "videos.example"


def test_automatic_titles_are_cut_to_200_characters_with_an_ellipsis() -> None:
    title = titles.fit("x" * 500)
    assert len(title) == titles.MAX_LENGTH and title.endswith("…")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        (" \t\n\u200b ", "empty"),
        ("x" * 201, "at most 200"),
        (42, "must be a string"),
        (None, "must be a string"),
        (["a"], "must be a string"),
    ],
)
def test_a_chosen_title_that_is_empty_too_long_or_not_text_is_refused(value: object, message: str) -> None:
    with pytest.raises(titles.InvalidTitle, match=message):
        titles.chosen(value)


def test_a_chosen_title_keeps_markup_as_text_and_loses_what_hides_or_reorders_characters() -> None:
    assert titles.chosen("<img src=x onerror=alert(1)>") == "<img src=x onerror=alert(1)>"
    # RIGHT-TO-LEFT OVERRIDE would show "holiday\u202egpj.exe" as "holidayexe.jpg".
    assert titles.chosen("holiday\u202egpj.exe") == "holiday gpj.exe"
    assert titles.chosen("  two\x00\x1b[31mlines\r\nhere  ") == "two [31mlines here"
    assert titles.chosen("lone \ud800 surrogate") == "lone surrogate"


def test_derived_assets_are_named_for_what_made_them() -> None:
    mask = {"regions": [{"start": 2.0, "end": 5.0}, {"start": 2.0, "end": 5.0}, {"start": 8.5, "end": None}]}
    assert titles.derived("holiday", "mask", mask, 20.0) == "holiday — masked 0:02–0:05, 0:08.5–0:20"
    sound = {
        "regions": [{"start": 2.0, "end": 5.0}],
        "audio": "keep",
        "audio_ranges": [
            {"start": 9.0, "end": 9.5, "style": "bleep"},
            {"start": 1.0, "end": 2.0, "style": "mute"},
            {"start": 3.0, "end": 4.0, "style": "bleep"},
        ],
    }
    expected = "holiday — masked 0:02–0:05, muted 0:01–0:02, bleeped 0:03–0:04, 0:09–0:09.5"
    assert titles.derived("holiday", "mask", sound, 20.0) == expected
    removed, muted = {"regions": [], "audio": "remove"}, {"regions": [], "audio": "mute"}
    assert titles.derived("holiday", "mask", removed, 20.0) == "holiday — without sound"
    assert titles.derived("holiday", "mask", muted, 20.0) == "holiday — muted"
    cut = {"ranges": [{"start": 31.0, "end": 32.0}, {"start": 10.0, "end": 12.0}]}
    assert titles.derived("holiday", "remove_frames", cut, 40.0) == "holiday — cut 0:10–0:12, 0:31–0:32"
    clip = {"start": 20.0, "end": 30.0, "crop": None}
    assert titles.derived("holiday", "clip", clip, 40.0) == "holiday — clip 0:20–0:30"
    crop = {"start": 3600.0, "end": 3725.0, "crop": {"aspect": "9:16", "x": 0.5}}
    assert titles.derived("holiday", "clip", crop, 4000.0) == "holiday — clip 1:00:00–1:02:05 (9:16)"


def test_a_derived_title_lists_a_few_ranges_and_counts_the_rest() -> None:
    cut = {"ranges": [{"start": float(s), "end": s + 0.5} for s in range(0, 100, 2)]}
    title = titles.derived("holiday", "remove_frames", cut, 200.0)
    listed = "0:00–0:00.5, 0:02–0:02.5, 0:04–0:04.5, 0:06–0:06.5, 0:08–0:08.5, 0:10–0:10.5"
    assert title == f"holiday — cut {listed} and 44 more"


SEARCHED = [
    "Holiday in Provence",
    "holiday 100% done",
    "holiday_cut",
    "holiday*star",
    "Robert'); DROP TABLE media;--",
    'say "cheese"',
    "back\\slash",
    "ÉLAN vital",
    "Straße",
    "plain",
]


@pytest.fixture(params=BACKENDS)
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Services:
    db = get_db(database_url(request.param, tmp_path, request))
    migrate(db)
    return Services(db=db, settings=Settings(), broker=None)  # type: ignore[arg-type]


def search(services: Services, q: str) -> list[str]:
    page = assets.list_media(services.db, state=None, limit=500, cursor=None, q=q)
    return sorted(media.title for media in page.items)


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("HOLIDAY", ["Holiday in Provence", "holiday 100% done", "holiday*star", "holiday_cut"]),
        ("%", ["holiday 100% done"]),
        ("_", ["holiday_cut"]),
        ("y_c", ["holiday_cut"]),
        ("*", ["holiday*star"]),
        ("%'", []),
        ("'", ["Robert'); DROP TABLE media;--"]),
        ("'); DROP TABLE media;--", ["Robert'); DROP TABLE media;--"]),
        ("' OR '1'='1", []),
        ('"cheese"', ['say "cheese"']),
        ("\\", ["back\\slash"]),
        ("/", []),
        ("élan", ["ÉLAN vital"]),
        ("STRASSE", ["Straße"]),
        ("", sorted(SEARCHED)),
    ],
)
def test_title_search_matches_any_case_and_every_character_literally(
    services: Services, q: str, found: list[str]
) -> None:
    with services.db.write() as session:
        for title in SEARCHED:
            session.add(assets.new_media(source={"type": "upload"}, title=title))

    assert search(services, q) == found
    assert search(services, "plain") == ["plain"]  # the table is still there


def test_a_title_found_later_never_replaces_one_a_person_chose(services: Services) -> None:
    media = assets.new_media(source={"type": "url", "url": "https://x.example/a.mp4"}, title="a")
    with services.db.write() as session:
        session.add(media)
    assert assets.rename(services, media.id, "My talk")

    assert not assets.rename(services, media.id, "Page title", only_if="a")

    assert search(services, "talk") == ["My talk"]
    assert search(services, "a") == ["My talk"]
