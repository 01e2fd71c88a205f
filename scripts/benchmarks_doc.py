"""Each benchmark keeps its latest figures in its own section of docs/benchmarks.md, between markers."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def measured_on(load_before: float | None = None) -> str:
    """When and where: the date, the machine's cores and its load average before the benchmark ran (pass what
    os.getloadavg() said at its start: afterwards it mostly shows the benchmark's own load)."""
    load = os.getloadavg()[0] if load_before is None else load_before
    return "Measured %s on %s (%d cores, load average %.1f before the run)" % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), platform.node() or "this machine", os.cpu_count() or 1,
        load)


def write_section(name: str, body: str, path: Path = DOC) -> None:
    """Replace the section `name` (between `<!-- bench:name -->` and `<!-- /bench:name -->`), keeping the others."""
    begin, end = "<!-- bench:%s -->" % name, "<!-- /bench:%s -->" % name
    section = "%s\n%s\n%s" % (begin, body.strip("\n"), end)
    text = path.read_text() if path.exists() else "# Benchmarks\n\nFigures written by `make bench`.\n"
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
