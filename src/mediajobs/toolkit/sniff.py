"""What a file is, from its first bytes: a media container ffmpeg may read, or something to name plainly.

Used where bytes arrive from strangers — an upload's body as it streams in, a file an import downloaded — so
that a text file, a picture or an archive is refused at once in words a person understands ("this is a PNG
image"), before anything is stored or ffprobe is asked about it. The containers recognised are those of
`inputs.MEDIA_FORMATS`; a file that starts like one may still be damaged, which probe finds out.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

# How many first bytes `sniff` wants: MPEG-TS needs a few 188-byte packets, text a fair sample.
SNIFF_BYTES = 4096
TS_PACKET = 188
UPLOAD_INSTEAD = "upload a video or audio file (MP4, MOV, MKV, WebM, MPEG-TS, MP3, M4A, WAV, ...)"
IMPORT_INSTEAD = "import the address of a video or audio file, or of a page with one on it"

# ISO BMFF / QuickTime (MP4, MOV, M4A, 3GP): the box a file may start with, after its 4-byte size.
BMFF_BOXES = frozenset(
    {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"styp", b"moof", b"sidx"}
)
# ftyp brands of still pictures in the same box format (HEIF, AVIF).
PICTURE_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"})
# MPEG audio frame sync (MP1/MP2/MP3) and ADTS AAC, by the second byte. Not FE/FF: FF FE is a UTF-16 BOM.
AUDIO_SYNC = frozenset(
    {0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xF0, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9}
    | {0xFA, 0xFB, 0xFC, 0xFD}
)
# Containers known by their first bytes (RIFF and FORM are told apart by their form type below).
CONTAINERS: tuple[tuple[bytes, str], ...] = (
    (b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (b"OggS", "Ogg"),
    (b"FLV\x01", "FLV"),
    (b"caff", "CAF"),
    (b"fLaC", "FLAC"),
    (b"wvpk", "WavPack"),
    (b"ID3", "MP3/AAC with an ID3 tag"),
    (b"\x00\x00\x01\xba", "MPEG program stream"),
    (b"\x0b\x77", "AC-3"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "ASF/WMV"),
    (b"\x06\x0e\x2b\x34", "MXF"),
    (b"\x1f\x07\x00", "DV"),
    (b"riff\x2e\x91\xcf\x11", "Wave64"),
)
RIFF_FORMS = {b"WAVE": "WAV", b"AVI ": "AVI", b"AVIX": "AVI"}
FORM_TYPES = {b"AIFF": "AIFF", b"AIFC": "AIFF"}
# What is not media, by its first bytes: the words a person reads.
NOT_MEDIA: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x00\x00\x01\x00", "an icon"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an XZ archive"),
    (b"\x28\xb5\x2f\xfd", "a Zstandard archive"),
    (b"\x7fELF", "a program (ELF)"),
    (b"MZ", "a Windows program"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Office document"),
    (b"\x00\x00\x01\xb3", "a raw MPEG video stream (no container)"),
)
# Text by what it starts with (after white space), lower-cased: what kind of text it is.
TEXT_KINDS: tuple[tuple[str, str], ...] = (
    ("#extm3u", "an HLS playlist (a list of links, not the video itself)"),
    ("<mpd", "a DASH manifest (a list of links, not the video itself)"),
    ("ffconcat", "an ffconcat script"),
    ("webvtt", "a WebVTT subtitle file"),
    ("<!doctype html", "a web page (HTML)"),
    ("<html", "a web page (HTML)"),
    ("<svg", "an SVG image"),
    ("<?xml", "an XML file"),
    ("{", "a JSON file"),
    ("[", "a JSON file"),
)
BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


@dataclass(frozen=True)
class Sniffed:
    """What the first bytes say: a media container (`media`), and in words what it is."""

    media: bool
    what: str

    @property
    def refusal(self) -> str | None:
        """The plain message for an upload that is not media ("this is a PNG image; upload a video ..."),
        else None."""
        return None if self.media else f"this is {self.what}; {UPLOAD_INSTEAD}"

    @property
    def import_refusal(self) -> str | None:
        """The same for a file an import downloaded: what the URL gave instead of media."""
        if self.media:
            return None
        return f"the URL gave {self.what}, not a video or audio file; {IMPORT_INSTEAD}"


def sniff_file(path: str | Path) -> Sniffed:
    """`sniff` of a file's first bytes."""
    with Path(path).open("rb") as f:
        return sniff(f.read(SNIFF_BYTES))


def sniff(first: bytes) -> Sniffed:
    """What a file starting with `first` (its first SNIFF_BYTES, or all of a shorter file) is."""
    if not first:
        return Sniffed(False, "an empty file")
    if (container := _container(first)) is not None:
        return Sniffed(True, container)
    for magic, what in NOT_MEDIA:
        if first.startswith(magic):
            return Sniffed(False, what)
    if first[:4] == b"RIFF" and first[8:12] == b"WEBP":
        return Sniffed(False, "a WebP image")
    if first[4:8] == b"ftyp" and first[8:12] in PICTURE_BRANDS:
        return Sniffed(False, "an AVIF image" if first[8:11] == b"avi" else "a HEIC image")
    if (text := _text(first)) is not None:
        return Sniffed(False, _text_kind(text))
    return Sniffed(False, "not a video or audio file mediajobs recognises")


def _container(first: bytes) -> str | None:
    box = first[4:8]
    if box in BMFF_BOXES:
        if box == b"ftyp" and first[8:12] in PICTURE_BRANDS:
            return None  # HEIC/AVIF still pictures share the MP4 box format
        return "MP4/MOV"
    if first[:4] in (b"RIFF", b"RF64", b"BW64"):
        return RIFF_FORMS.get(first[8:12])
    if first[:4] == b"FORM":
        return FORM_TYPES.get(first[8:12])
    for magic, what in CONTAINERS:
        if first.startswith(magic):
            return what
    if len(first) >= 2 and first[0] == 0xFF and first[1] in AUDIO_SYNC:
        return "MPEG audio"
    if _transport_stream(first):
        return "MPEG-TS"
    return None


def _transport_stream(first: bytes) -> bool:
    """MPEG-TS (a 0x47 sync byte every 188 bytes) or M2TS (the same, each packet after a 4-byte time),
    allowing for a file cut mid-packet at its start."""
    for packet, offset in ((TS_PACKET, 0), (TS_PACKET + 4, 4)):
        for start in range(offset, min(packet, len(first)) + offset):
            syncs = range(start, len(first), packet)
            if len(syncs) >= 3 and all(first[i] == 0x47 for i in syncs):
                return True
            if len(syncs) < 3:
                break
    return False


def _text(first: bytes) -> str | None:
    """`first` decoded as text when it is text (a BOM, or UTF-8 with hardly any control characters)."""
    for bom, encoding in BOMS:
        if first.startswith(bom):
            return first[len(bom) :].decode(encoding, "ignore")
    text = first.decode("utf-8", "ignore")
    if len(text.encode()) < len(first) - 4:  # more than a character cut at the end failed to decode
        latin = first.decode("latin-1")
        if sum(c.isprintable() or c in "\r\n\t" for c in latin) < 0.95 * len(latin):
            return None
        text = latin
    controls = sum(not (c.isprintable() or c in "\r\n\t\f") for c in text)
    return text if controls <= 0.01 * len(text) else None


def _text_kind(text: str) -> str:
    start = text.lstrip().lower()
    for prefix, what in TEXT_KINDS:
        if start.startswith(prefix):
            return what
    lines = start.splitlines()
    if len(lines) >= 2 and "-->" in lines[1] and lines[0].strip().isdigit():
        return "an SRT subtitle file"
    return "a text file"
