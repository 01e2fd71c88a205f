"""execution-environment.yml builds a valid context with ansible-builder (no container engine here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT

BUILDER = Path(sys.executable).parent / "ansible-builder"


def test_ansible_builder_creates_a_context_with_the_projects_own_requirements(tmp_path):
    ctx = tmp_path / "ctx"
    proc = subprocess.run([str(BUILDER), "create", "-f", str(ROOT / "execution-environment.yml"), "--context",
                           str(ctx)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    build = ctx / "_build"
    # The image installs exactly what the tests ran with: the same pins, collections and system packages.
    assert (build / "requirements.txt").read_text() == (ROOT / "requirements.txt").read_text()
    assert (build / "requirements.yml").read_text() == (ROOT / "requirements.yml").read_text()
    assert (build / "bindep.txt").read_text() == (ROOT / "bindep.txt").read_text()
    containerfile = next(p for p in (ctx / "Containerfile", ctx / "Dockerfile") if p.exists()).read_text()
    assert "quay.io/centos/centos:stream9" in containerfile
    assert "ansible-core==2.19.14" in containerfile
    assert "/usr/bin/python3.11" in containerfile


def test_ansible_builder_refuses_a_broken_definition(tmp_path):
    """The check above can fail: a definition with an unknown schema version is refused."""
    broken = tmp_path / "ee.yml"
    broken.write_text((ROOT / "execution-environment.yml").read_text().replace("version: 3", "version: 99"))
    proc = subprocess.run([str(BUILDER), "create", "-f", str(broken), "--context", str(tmp_path / "ctx")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
