"""lookup_plugins/release_records.py: which record files it reads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("release_records_lookup", ROOT / "lookup_plugins/release_records.py")
lookup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lookup)


def test_the_records_one_level_down_and_at_the_top_are_found_in_path_order(tmp_path):
    base = tmp_path / "arti[facts]*"  # glob characters in the directory itself are taken literally
    for rel in ("v2/release.json", "v1/release.json", "release.json", "v1/release.check.json",
                "v3/deeper/release.json", "v4/report.md"):
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text("{}")
    (base / "v5" / "release.json").mkdir(parents=True)  # a directory named like a record is not one
    assert [Path(p).relative_to(base).as_posix() for p in lookup.record_paths(str(base))] == [
        "release.json", "v1/release.json", "v2/release.json"]


def test_a_missing_or_empty_directory_gives_nothing(tmp_path):
    assert lookup.record_paths(str(tmp_path / "nope")) == []
    assert lookup.record_paths("") == []
    assert lookup.record_paths(str(tmp_path)) == []
