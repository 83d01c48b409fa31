"""The media job kinds: import (`imports`), the HLS ladder (`transcode`), mask, cut and analyze
(`operations`), cleanup and delete (`housekeeping`)."""

HOUR = 3600.0
