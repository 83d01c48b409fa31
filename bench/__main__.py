"""`make bench`: every benchmark, each printing a ratio against a baseline measured in the same run."""

from __future__ import annotations

import importlib
import sys

MODULES = [
    "bench.jobs",
    "bench.engine",
    "bench.hls",
    "bench.fast_start",
    "bench.derived",
    "bench.upload",
    "bench.mask",
    "bench.smartrender",
    "bench.egress",
    "bench.clip",
    "bench.outputs",
    "bench.tus",
]

for name in sys.argv[1:] or MODULES:
    try:
        module = importlib.import_module(name if name.startswith("bench.") else f"bench.{name}")
    except ModuleNotFoundError as exc:
        print(f"{name}: not available ({exc})")
        continue
    module.main()
