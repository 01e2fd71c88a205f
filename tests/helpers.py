"""Helpers for integration tests that run the project's playbooks for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# The one list of phases (vars/release.yml): every phase a full release records, in order.
RELEASE_PHASES = yaml.safe_load((ROOT / "vars/release.yml").read_text())["release_phases"]
PHASES = tuple(p["name"] for p in RELEASE_PHASES)


# What every play that runs phases carries (see playbooks/*.yml): the release's fixed data and the connection of
# the database modules, passed once per play.
PLAY_HEADER = """\
  vars_files: [%s/vars/release.yml]
  module_defaults:
    group/dbrelease.core.db: "{{ release_db_login }}"
""" % ROOT
# The end of a play that runs phases, as in release.yml: clean-up, report, and the stop of the failed hosts.
FINISH = """
- name: Finish
  ansible.builtin.import_playbook: %s/playbooks/finish.yml
""" % ROOT


def write_inventory(path: Path, hosts: dict, group_vars: dict | None = None) -> Path:
    """A YAML inventory with the `databases` group: hosts maps inventory name -> host vars."""
    path.parent.mkdir(parents=True, exist_ok=True)
    inv = {"all": {"children": {"databases": {"hosts": hosts, "vars": group_vars or {}}}}}
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return path


def local_host_vars(box, admin_user, admin_password, **extra) -> dict:
    """Host vars for a sandbox server reached over its socket with the local connection."""
    hv = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "release_db_socket": box.socket,
        "release_db_host": "127.0.0.1",
        "release_db_port": box.port,
        "release_db_admin_user": admin_user,
        "release_db_admin_password": admin_password,
    }
    hv.update(extra)
    return hv


def run_playbook(playbook, inventory, extra_vars=None, tags=None, check=False, diff=False, env=None,
                 timeout=900, args=()):
    """Run ansible-playbook from the repository root; returns the CompletedProcess (never raises on failure)."""
    cmd = [str(VENV_BIN / "ansible-playbook"), str(playbook), "-i", str(inventory)]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if tags:
        cmd += ["--tags", tags]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    cmd += list(args)
    full_env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
                    ANSIBLE_NOCOLOR="1", PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    full_env.update(env or {})
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)


def recap(output: str) -> dict:
    """{host: {ok, changed, failed, ...}} from the PLAY RECAP of ansible-playbook output."""
    result = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if in_recap and ":" in line and "=" in line:
            host, _, counters = line.partition(":")
            result[host.strip()] = {k: int(v) for k, v in (p.split("=") for p in counters.split())}
    return result


def run_module(name: str, args: dict, check: bool = False, diff: bool = False) -> dict:
    """Run library/<name>.py for real (as Ansible would on the target) and return its JSON result."""
    payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check, _ansible_diff=diff)}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), *sys.path]))
    proc = subprocess.run([sys.executable, "-c", _MODULE_RUNNER, str(ROOT / "library" / (name + ".py"))],
                          input=json.dumps(payload), capture_output=True, text=True, env=env, timeout=600)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise AssertionError("module %s printed no JSON:\n%s\n%s" % (name, proc.stdout, proc.stderr)) from None


def start_module(name: str, args: dict, check: bool = False, env=None) -> subprocess.Popen:
    """Start library/<name>.py as run_module() does, without waiting: for tests that kill it mid-way. Its stdin is
    already written and closed; read its JSON result from stdout."""
    payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check, _ansible_diff=False)}
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), *sys.path]), **(env or {}))
    proc = subprocess.Popen([sys.executable, "-c", _MODULE_RUNNER, str(ROOT / "library" / (name + ".py"))],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env)
    proc.stdin.write(json.dumps(payload))
    proc.stdin.close()
    return proc


# Makes `ansible.module_utils.dbrelease` resolve to this repository's module_utils, then runs the module file.
_MODULE_RUNNER = """
import runpy, sys
import ansible.module_utils
ansible.module_utils.__path__.append(%r)
path = sys.argv.pop(1)
runpy.run_path(path, run_name="__main__")
""" % str(ROOT / "module_utils")
