"""`python -m mediajobs.egress.ytdlp_main ARGS`: yt-dlp with ffmpeg never used as a downloader.

yt-dlp hands a stream to ffmpeg when its native downloader meets something it does not do (SAMPLE-AES,
some live or sectioned downloads). ffmpeg then fetches on its own, with its own protocols (file, ftp,
rtmp...) and without the proxy's body caps. Here such a download fails instead; ffmpeg still merges and
remuxes files that are already on disk.
"""

from __future__ import annotations

import sys
from typing import Any

REFUSAL = "mediajobs: this stream needs ffmpeg as its downloader, which imports do not use"


def native_only() -> None:
    """Make every download yt-dlp would give to ffmpeg fail with REFUSAL."""
    # yt-dlp loads in the child only, for start-up cost: `egress.ytdlp` imports REFUSAL from here.
    from yt_dlp.downloader.external import FFmpegFD

    def refuse(self: Any, tmpfilename: str, info_dict: dict[str, Any]) -> int:
        self.report_error(REFUSAL)
        return 1

    FFmpegFD._call_downloader = refuse  # type: ignore[method-assign]


def main() -> None:
    native_only()
    import yt_dlp

    yt_dlp.main(sys.argv[1:])


if __name__ == "__main__":
    main()
