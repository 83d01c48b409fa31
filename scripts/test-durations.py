#!/usr/bin/env python3
"""Write tests/durations.json, the seconds each test module took, from a run's JUnit XML.

    CI=true PYTEST_ADDOPTS="--junitxml=/tmp/run.xml" make test
    .venv/bin/python scripts/test-durations.py /tmp/run.xml

tests/conftest.py hands the modules to pytest-xdist longest first, so that no long module starts last.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "durations.json"


def main(junit: str) -> None:
    seconds: Counter[str] = Counter()
    for case in ET.parse(junit).iter("testcase"):
        module = case.get("classname", "").split(".")
        while module and not module[-1].startswith("test_"):  # a class inside the module
            module.pop()
        if module:
            seconds["/".join(module) + ".py"] += float(case.get("time", 0))
    OUT.write_text(json.dumps({m: round(s, 1) for m, s in sorted(seconds.items())}, indent=0) + "\n")
    print(f"{len(seconds)} modules, {sum(seconds.values()):.0f} s in all -> {OUT}")


if __name__ == "__main__":
    main(*sys.argv[1:])
