"""Direct execution (plugin_utils/direct.py): a module run in the worker returns what its module process returns.

The same play runs twice against the real server, once as usual (DBRELEASE_DIRECT=0) and once directly: the
results agree, successes and failures alike, check mode and no_log included; and a module whose task does not run
on the controller's own Python is never run directly.
"""

from __future__ import annotations

import json

import pytest
from conftest import ADMIN_PASSWORD, ADMIN_USER
from helpers import PLAY_HEADER, local_host_vars, run_playbook, write_inventory

PLAY = """
- name: The same module calls, directly or not
  hosts: databases
  gather_facts: false
""" + PLAY_HEADER + """\
  tasks:
    - name: Describe the server
      db_server_info: {database: "{{ release_db_name }}"}
      register: info
      no_log: true
    - name: Describe a database that does not exist
      db_server_info: {database: nowhere_at_all}
      register: missing
      ignore_errors: true
    - name: Read the numbers in check mode
      outbox_stats: {database: "{{ release_db_name }}"}
      check_mode: true
      register: stats
    - name: Keep the results
      ansible.builtin.copy:
        content: "{{ {'info': info, 'missing': missing, 'stats': stats} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""

VOLATILE = {"elapsed_seconds", "server_time"}


def scrub(value):
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


@pytest.fixture
def play(mariadb, dbname, tmp_path):
    playbook = tmp_path / "direct.yml"
    playbook.write_text(PLAY)

    def run(direct, **host_vars):
        out = tmp_path / ("direct.json" if direct else "process.json")
        hv = local_host_vars(mariadb, ADMIN_USER, ADMIN_PASSWORD, release_db_name=dbname, **host_vars)
        inventory = write_inventory(tmp_path / "inventory.yml", {"db1": hv})
        proc = run_playbook(playbook, inventory, extra_vars={"out": str(out)}, args=("-vvv",),
                            env={"DBRELEASE_DIRECT": "1" if direct else "0"})
        assert proc.returncode == 0, proc.stdout[-3000:]
        return json.loads(out.read_text()), proc.stdout
    return run


def test_a_module_run_directly_returns_what_its_module_process_returns(play):
    process, process_out = play(direct=False)
    direct, direct_out = play(direct=True)
    assert "ran module db_server_info in the worker process" in direct_out
    assert "ran module db_server_info in the worker process" not in process_out
    assert scrub(direct) == scrub(process)
    assert direct["info"]["record"]["database"]["exists"] is True
    assert direct["missing"]["failed"] is True and "does not exist" in direct["missing"]["msg"]
    assert ADMIN_PASSWORD not in direct_out and ADMIN_PASSWORD not in json.dumps(direct)


def test_a_task_on_another_interpreter_runs_as_a_module_process(mariadb, dbname, tmp_path):
    playbook = tmp_path / "other.yml"
    playbook.write_text("""
- name: A module on another Python
  hosts: databases
  gather_facts: false
""" + PLAY_HEADER + """\
  tasks:
    - name: Describe the server
      db_server_info: {database: "{{ release_db_name }}"}
      ignore_errors: true
""")
    hv = local_host_vars(mariadb, ADMIN_USER, ADMIN_PASSWORD, release_db_name=dbname,
                         ansible_python_interpreter="/usr/bin/python3")
    proc = run_playbook(playbook, write_inventory(tmp_path / "inv.yml", {"db1": hv}), args=("-vvv",))
    assert "PLAY RECAP" in proc.stdout, proc.stdout[-2000:]
    assert "in the worker process" not in proc.stdout
    assert "/usr/bin/python3" in proc.stdout  # the module process ran on the interpreter the host names
