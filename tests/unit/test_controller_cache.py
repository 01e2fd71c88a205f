"""The controller's caches (plugin_utils/controller_cache.py): compiled templates and parsed vars_files.

Against the pinned ansible-core itself: a cached template renders each time against the variables of the moment,
compile errors are raised every time and never kept, a changed file is read again, and a whole playbook gives the
same output with the caches as without them (three hosts, each with its own variables, forked workers).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "collections/ansible_collections/dbrelease/core/plugins/plugin_utils/controller_cache.py"

from ansible._internal._datatag._tags import TrustedAsTemplate  # noqa: E402
from ansible._internal._templating._engine import TemplateEngine  # noqa: E402
from ansible.errors import AnsibleError  # noqa: E402
from ansible.parsing.dataloader import DataLoader  # noqa: E402
from ansible.playbook.task import Task  # noqa: E402
from ansible.plugins.loader import init_plugin_loader  # noqa: E402

# Loaded from its file: importing ansible_collections from the source tree would hide Ansible's collection loader.
_spec = importlib.util.spec_from_file_location("dbrelease_controller_cache", SOURCE)
cc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cc)


@pytest.fixture(scope="module", autouse=True)
def installed():
    assert cc.install() == {"compile": True, "vars_files": True}, "ansible-core's internals changed"


def trusted(text):
    return TrustedAsTemplate().tag(text)


def render(text, basedir="/tmp", **variables):
    loader = DataLoader()
    loader.set_basedir(basedir)
    return TemplateEngine(loader=loader, variables=variables).template(trusted(text))


def test_a_cached_template_renders_against_the_variables_of_each_call():
    text = "{{ name | upper }}-{{ n + 1 }}-cache-test-1"
    hits = cc.STATS["hits"]
    assert render(text, name="a", n=1) == "A-2-cache-test-1"
    assert render(text, name="b", n=41) == "B-42-cache-test-1"
    assert cc.STATS["hits"] > hits


def test_another_base_directory_compiles_its_own():
    text = "{{ 'x' }}-cache-test-2"
    render(text, basedir="/tmp")
    misses = cc.STATS["misses"]
    render(text, basedir="/var")
    assert cc.STATS["misses"] == misses + 1
    assert len([k for k in cc._COMPILED if k[2] == text]) == 2


def test_a_compile_error_is_raised_every_time_and_never_kept():
    text = "{{ broken ( }}-cache-test-3"
    for _ in range(2):
        with pytest.raises(AnsibleError, match="[Ss]yntax"):
            render(text)
    assert not [k for k in cc._COMPILED if k[2] == text]


def test_expressions_are_cached_by_text_and_evaluated_each_time():
    loader = DataLoader()
    for value, expected in ((3, True), (1, False)):
        engine = TemplateEngine(loader=loader, variables={"v": value})
        assert engine.evaluate_conditional(trusted("v > 2 and 'cache-test-4' != ''")) is expected
    assert [k for k in cc._COMPILED if k[0] == "e" and "cache-test-4" in k[2]]


def test_prewarm_compiles_a_tasks_arguments_and_conditionals_before_its_workers():
    init_plugin_loader()  # Task.load resolves the action's name through the collection loader
    task = Task.load({"name": "t", "ansible.builtin.debug": {"msg": "{{ greeting }} cache-test-5"},
                      "when": "flag | bool and 'cache-test-5' != ''"}, loader=DataLoader())
    assert cc.prewarm(task, DataLoader()) == 2
    assert cc.prewarm(task, DataLoader()) == 0  # already compiled
    assert render("{{ greeting }} cache-test-5", basedir=os.getcwd(), greeting="hi") == "hi cache-test-5"


def test_vars_files_are_parsed_once_per_version_of_the_file(tmp_path):
    path = tmp_path / "release.yml"
    path.write_text("release_x: [1, 2]\n")
    loader = DataLoader()
    first = loader.load_from_file(str(path), cache="vaulted", unsafe=True)
    hits = cc.STATS["vars_files_hits"]
    assert loader.load_from_file(str(path), cache="vaulted", unsafe=True) is first
    assert cc.STATS["vars_files_hits"] == hits + 1
    copy = loader.load_from_file(str(path), cache="vaulted")
    copy["release_x"].append(3)  # a caller's copy: the cached data stays as read
    assert loader.load_from_file(str(path), cache="vaulted", unsafe=True) == {"release_x": [1, 2]}
    time.sleep(0.01)
    path.write_text("release_x: [1, 2, 3, 4]\n")
    assert loader.load_from_file(str(path), cache="vaulted", unsafe=True) == {"release_x": [1, 2, 3, 4]}


PLAYBOOK = """
- name: Per-host templates, conditionals and vars_files through forked workers
  hosts: all
  gather_facts: false
  vars_files: [vars.yml]
  vars:
    shout: "{{ word | upper }}"
  tasks:
    - name: Each host its own values
      ansible.builtin.debug:
        msg: "{{ inventory_hostname }}={{ shout }}/{{ from_file }}/{{ n * 2 }}"
    - name: Only where n is odd
      ansible.builtin.debug:
        msg: "odd {{ inventory_hostname }}"
      when: n is odd
    - name: A loop
      ansible.builtin.debug:
        msg: "{{ inventory_hostname }} item {{ item + n }}"
      loop: [1, 2]
"""


def run_play(tmp_path, cache):
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "vars.yml").write_text('from_file: "{{ word }}!"\n')
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n" + "".join(
        "    h%d: {ansible_connection: local, ansible_python_interpreter: %s, word: w%d, n: %d}\n"
        % (i, sys.executable, i, i) for i in range(1, 4)))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORKS="5",
               DBRELEASE_CONTROLLER_CACHE="1" if cache else "0")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "play.yml", "-i", "hosts.yml", "-vv"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = sorted(line.strip() for line in proc.stdout.splitlines() if '"msg":' in line or "msg:" in line)
    return lines, re.search(r"controller_cache: (\d+) templates compiled before the workers forked", proc.stdout)


def test_a_playbook_prints_the_same_with_the_caches_as_without(tmp_path):
    (with_cache, said), (without, unsaid) = run_play(tmp_path, True), run_play(tmp_path, False)
    assert with_cache == without
    assert said and int(said.group(1)) >= 5 and unsaid is None  # the run with the caches did use them
    assert any("h2=W2/w2!/4" in line for line in with_cache), with_cache
    assert sum("odd h" in line for line in with_cache) == 2
    assert any("h3 item 5" in line for line in with_cache)
