"""The SUBTITLES rendition group a master gains for caption tracks, and their one-segment playlists."""

from __future__ import annotations

from mediajobs.toolkit.hls.playlists import SubtitleTrack, subtitle_playlist, with_subtitles

MASTER = (
    "#EXTM3U\n#EXT-X-VERSION:4\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="Audio",DEFAULT=YES,AUTOSELECT=YES,URI="audio/index.m3u8"\n'
    '#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2",AUDIO="audio"\n'
    "360p/index.m3u8\n"
    '#EXT-X-STREAM-INF:BANDWIDTH=500000,RESOLUTION=426x240,CODECS="avc1.64001e,mp4a.40.2",AUDIO="audio"\n'
    "240p/index.m3u8\n"
)


def test_every_variant_refers_to_one_subtitles_group_listing_each_track() -> None:
    tracks = [
        SubtitleTrack("English", "en", "../../captions/a.m3u8"),
        SubtitleTrack("English", "en-GB", "../../captions/b.m3u8"),
        SubtitleTrack('Say "hi"\nnow', "fr", "../../captions/c.m3u8"),
    ]
    lines = with_subtitles(MASTER, tracks).splitlines()
    media = [line for line in lines if line.startswith("#EXT-X-MEDIA:TYPE=SUBTITLES")]
    assert media == [
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,'
        'LANGUAGE="en",URI="../../captions/a.m3u8"',
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English (2)",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,'
        'LANGUAGE="en-GB",URI="../../captions/b.m3u8"',
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="Say \'hi\' now",DEFAULT=NO,AUTOSELECT=YES,'
        'FORCED=NO,LANGUAGE="fr",URI="../../captions/c.m3u8"',
    ]
    # The renditions come before the first variant; every variant names the group.
    first_variant = min(i for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF"))
    assert lines.index(media[-1]) < first_variant
    variants = [line for line in lines if line.startswith("#EXT-X-STREAM-INF")]
    assert len(variants) == 2 and all(line.endswith(',SUBTITLES="subs"') for line in variants)
    assert [line for line in lines if not line.startswith("#")] == ["360p/index.m3u8", "240p/index.m3u8"]


def test_a_master_without_tracks_is_left_as_it_is() -> None:
    assert with_subtitles(MASTER, []) == MASTER


def test_a_subtitles_playlist_is_one_segment_the_length_of_the_media() -> None:
    assert subtitle_playlist("abc.vtt", 12.34) == (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:13\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n#EXTINF:12.340000,\nabc.vtt\n#EXT-X-ENDLIST\n"
    )
