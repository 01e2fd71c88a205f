"""The documentation blocks of the modules and filters this issue's work added or changed parse as YAML (what
ansible-doc needs)."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import ROOT

FILES = ["library/outbox_stats.py", "library/backup_retention.py", "library/backup_restore_check.py",
         "filter_plugins/outbox_health.py", "filter_plugins/destructive_changes.py",
         "filter_plugins/verified_releases.py", "filter_plugins/watch_regressions.py",
         "filter_plugins/release_attention.py"]


@pytest.mark.parametrize("path", FILES)
@pytest.mark.parametrize("block", ["DOCUMENTATION", "EXAMPLES", "RETURN"])
def test_documentation_blocks_parse(path, block):
    text = (ROOT / path).read_text()
    match = re.search(block + r' = r"""(.*?)"""', text, re.S)
    assert match, "%s has no %s" % (path, block)
    assert yaml.safe_load(match.group(1)) is not None
