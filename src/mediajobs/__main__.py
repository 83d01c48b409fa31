from __future__ import annotations

from mediajobs.cli import main

main()
