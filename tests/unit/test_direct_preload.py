"""The project's modules imported once before the workers fork (callback_plugins/direct_preload.py).

Against the pinned ansible-core itself: a module run directly (plugins/plugin_utils/direct.py) by two tasks on three
local hosts is imported once, in Ansible's main process, and every worker finds it there; without the callback each
of the six workers imports it again. The module records every import of its file, so the count is the module's own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MODULE = '''
import os

from ansible.module_utils.basic import AnsibleModule

with open(os.environ["PROBE_IMPORTS"], "a") as imports:  # one line per import of this file
    imports.write("%d\\n" % os.getpid())


def main():
    module = AnsibleModule(argument_spec={"word": {"type": "str", "required": True}})
    module.exit_json(changed=False, echoed=module.params["word"], pid=os.getpid())


if __name__ == "__main__":
    main()
'''

ACTION = ("from ansible_collections.dbrelease.core.plugins.plugin_utils.direct import DirectModuleAction"
          " as ActionModule\n\n__all__ = [\"ActionModule\"]\n")

PLAYBOOK = """
- name: A directly run module, twice per host
  hosts: all
  gather_facts: false
  tasks:
    - name: First call
      probe_import:
        word: "{{ inventory_hostname }}"
      register: first
    - name: Second call
      probe_import:
        word: "again {{ inventory_hostname }}"
      register: second
    - name: What the module answered
      ansible.builtin.debug:
        msg: "{{ inventory_hostname }} said {{ first.echoed }} / {{ second.echoed }}"
"""


def run_play(tmp_path, callbacks):
    for sub, text in (("library", MODULE), ("action_plugins", ACTION)):
        (tmp_path / sub).mkdir(exist_ok=True)
        (tmp_path / sub / "probe_import.py").write_text(text)
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n" + "".join(
        "    h%d: {ansible_connection: local, ansible_python_interpreter: %s}\n" % (i, sys.executable)
        for i in range(1, 4)))
    imports = tmp_path / ("imports-%s" % callbacks.name)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORKS="5",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_LIBRARY=str(tmp_path / "library"),
               ANSIBLE_ACTION_PLUGINS=str(tmp_path / "action_plugins"),
               ANSIBLE_CALLBACK_PLUGINS=str(callbacks), PROBE_IMPORTS=str(imports))
    env.pop("DBRELEASE_DIRECT", None)
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "play.yml", "-i", "hosts.yml", "-vv"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, imports.read_text().split()


def test_a_directly_run_module_is_imported_once_for_all_workers(tmp_path):
    empty = tmp_path / "no_callbacks"
    empty.mkdir()
    out, imports = run_play(tmp_path, ROOT / "callback_plugins")
    assert re.search(r"direct_preload: 1 of the project's modules imported before the workers forked", out), out
    assert len(imports) == 1, imports  # in the main process, before any worker forked
    for host in ("h1", "h2", "h3"):
        assert "%s said %s / again %s" % (host, host, host) in out
    workers = set(re.findall(r'"pid": (\d+)', out))
    assert imports[0] not in workers and len(workers) == 6, workers  # it ran in six workers, not where it was imported

    out, imports = run_play(tmp_path, empty)
    assert "direct_preload" not in out
    assert len(imports) == 6, imports  # without the callback, every worker imports it again
