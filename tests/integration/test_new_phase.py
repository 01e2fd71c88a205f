"""docs/architecture.md's checklist for a new phase, followed to the letter on a copy of the project.

The throwaway phase `announce` (after verify, its own tag, a module of its own that returns a `record` part) is added
with the checklist's steps and nothing else; then the copy's own consistency tests pass, and a real release with it
records the phase, reports it, and `--tags announce` runs it alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ADMIN_PASSWORD, ADMIN_USER, ROOT, short_tmpdir
from helpers import local_host_vars, write_inventory

VERSION = "v5.0.0-announce"

NOTIFY_MODULE = '''#!/usr/bin/python
"""Throwaway module of the test: writes a message to a file, returns what the record keeps."""

DOCUMENTATION = r"""
---
module: announce_send
short_description: Write a release message to a file
description: [Writes I(message) to I(path).]
options:
  path: {description: The file., type: path, required: true}
  message: {description: The message., type: str, required: true}
attributes:
  check_mode: {support: full}
author: test
"""
EXAMPLES = r"""
- name: Announce
  announce_send: {path: /tmp/x, message: hi}
"""
RETURN = r"""
record:
  description: What the release record keeps (phases.announce) - C(sent_to), C(message).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(path=dict(type="path", required=True),
                                              message=dict(type="str", required=True)), supports_check_mode=True)
    path, message = module.params["path"], module.params["message"]
    current = open(path).read() if __import__("os").path.exists(path) else None
    if current != message and not module.check_mode:
        with open(path, "w") as handle:
            handle.write(message)
    module.exit_json(changed=current != message, msg="sent %r to %s" % (message, path),
                     record={"sent_to": path, "message": message})


if __name__ == "__main__":
    main()
'''

NOTIFY_TASKS = """---
- name: Run the announce phase
  block:
    - name: Start the announce phase
      release_phase:
        phase: announce
        results: [__announce_result]
        requires: [verify]

    - name: Send the release message
      announce_send:
        path: "{{ announce_path }}"
        message: "Release {{ release_version }} is out"
      register: __announce_result

    - name: Finish the announce phase
      release_phase:
        phase: announce
        status: ok
  rescue:
    - name: Record why the announce phase failed
      release_phase:
        phase: announce
        status: failed

    - name: Stop this play here (the finish play cleans up)
      ansible.builtin.meta: end_host
"""

NOTIFY_PLAYBOOK = """---
- name: "Announce: tell people the release is out"
  hosts: "{{ release_hosts | default('databases') | release_phase_hosts(groups=groups) }}"
  gather_facts: false
  tags: [announce]
  vars_files: [../vars/release.yml]
  module_defaults:
    group/dbrelease.core.db: "{{ release_db_login }}"
  roles:
    - role: announce

- name: Finish, when this phase runs alone
  ansible.builtin.import_playbook: finish.yml
  vars:
    finish_alone: true
"""


def copy_project(dest: Path):
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    (dest / ".venv").symlink_to(Path(sys.prefix))
    modules = ROOT / "examples/app/backend/node_modules"
    if modules.exists():
        (dest / "examples/app/backend/node_modules").symlink_to(modules.resolve())


def follow_the_checklist(project: Path):
    """docs/architecture.md, "Adding a phase", step by step."""
    # 1. vars/release.yml: the phase, where it runs.
    release_vars = project / "vars/release.yml"
    text = release_vars.read_text()
    anchor = "  - {name: verify, playbook: verify, tags: [verify], role: verify}\n"
    assert anchor in text
    release_vars.write_text(text.replace(anchor, anchor + "  - {name: announce, playbook: announce, tags: [announce], "
                                                          "role: announce}\n"))
    # 2. roles/announce/.
    role = project / "roles/announce"
    (role / "tasks").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "meta").mkdir()
    (role / "tasks/main.yml").write_text(NOTIFY_TASKS)
    (role / "defaults/main.yml").write_text("---\n# Where the release message is written.\nannounce_path: "
                                            "\"{{ release_announce_path | default('/tmp/announce.txt') }}\"\n")
    (role / "meta/main.yml").write_text(yaml.safe_dump({"galaxy_info": {
        "author": "test", "description": "Tell people", "license": "MIT", "min_ansible_version": "2.17",
        "platforms": [{"name": "Debian", "versions": ["all"]}]}, "dependencies": []}, sort_keys=False))
    (role / "meta/argument_specs.yml").write_text(yaml.safe_dump({"argument_specs": {"main": {
        "short_description": "Tell people the release is out", "options": {
            "announce_path": {"type": "path", "description": "Where the message is written."}}}}}))
    (role / "README.md").write_text("# announce\n\nWrites the release message to `announce_path`.\n")
    # 3. The module returns its record part (it does not connect to the database: no action group entry).
    (project / "library/announce_send.py").write_text(NOTIFY_MODULE)
    # 4. playbooks/announce.yml.
    (project / "playbooks/announce.yml").write_text(NOTIFY_PLAYBOOK)
    # 5. release.yml: the import, at its place.
    release = project / "release.yml"
    text = release.read_text()
    anchor = "- name: Verify\n  ansible.builtin.import_playbook: playbooks/verify.yml\n  vars: *release\n"
    assert anchor in text
    release.write_text(text.replace(anchor, anchor + "- name: Announce\n  ansible.builtin.import_playbook: "
                                                     "playbooks/announce.yml\n  vars: *release\n"))
    # 6. awx/job_templates.yml: a template for the new tag, after verify's.
    awx = project / "awx/job_templates.yml"
    templates = awx.read_text()
    start = templates.index("  - name: dbrelease phase verify\n")
    end = templates.index("  - name: dbrelease phase ", start + 1)  # the template after verify's
    verify = templates[start:end]
    templates = templates[:end] + verify.replace("verify", "announce") + templates[end:]
    awx.write_text(templates)
    # 7. docs/architecture.md's table and the README's line of phases.
    arch = project / "docs/architecture.md"
    text = arch.read_text()
    row = "| `verify` | `playbooks/verify.yml` | `verify` | `verify` |\n"
    arch.write_text(text.replace(row, row + "| `announce` | `playbooks/announce.yml` | `announce` | `announce` |\n"))
    readme = project / "README.md"
    readme.write_text(readme.read_text().replace(" ─ verify ─ ", " ─ verify ─ announce ─ ", 1))
    # 8. privileges.py: the phase's privileges (none: it writes a file on the controller).
    privileges = project / "module_utils/dbrelease/privileges.py"
    text = privileges.read_text()
    anchor = '    "tag": [],\n'
    assert anchor in text
    privileges.write_text(text.replace(anchor, anchor + '    "announce": [],\n'))


def run(project, *args, env=None):
    full_env = dict(os.environ, ANSIBLE_CONFIG=str(project / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                    PATH=str(project / ".venv/bin") + os.pathsep + os.environ.get("PATH", ""))
    full_env.update(env or {})
    return subprocess.run(list(args), cwd=project, env=full_env, capture_output=True, text=True, timeout=900)


@pytest.fixture
def project(mariadb, dbname):
    base = Path(short_tmpdir("dbr-new-"))
    copy = base / "project"
    copy.mkdir()
    copy_project(copy)
    follow_the_checklist(copy)
    client = shutil.which("mariadb") or shutil.which("mysql")
    with open(ROOT / "examples/app/db/schema_pre_release.sql", "rb") as handle:
        subprocess.run([client, "--no-defaults", "-uroot", "-S", mariadb.socket, dbname], stdin=handle, check=True)
    hv = local_host_vars(mariadb, ADMIN_USER, ADMIN_PASSWORD, release_db_name=dbname, release_environment="staging",
                         release_ddl_files=[str(copy / "examples/app/infra/ddls/create_distributed_tables.sql")],
                         release_migration_command="", release_backup_dir=str(base / "backups"),
                         release_artifacts_dir=str(base / "artifacts"), release_git_repo="",
                         lock_schema="lk_" + dbname, backup_restore_test=False,
                         release_announce_path=str(base / "announce.txt"))
    inventory = write_inventory(base / "inventory.yml", {"db1": hv})
    yield {"copy": copy, "base": base, "inventory": inventory, "record": base / "artifacts" / VERSION}
    mariadb.sql("DROP DATABASE IF EXISTS `lk_%s`" % dbname)
    shutil.rmtree(base, ignore_errors=True)


def test_a_phase_added_with_the_checklist_alone_is_consistent_and_runs_through_a_release(project):
    copy = project["copy"]
    checks = run(copy, str(copy / ".venv/bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 "tests/unit/test_phases.py")
    assert checks.returncode == 0, checks.stdout[-4000:]

    release = run(copy, str(copy / ".venv/bin/ansible-playbook"), "release.yml", "-i", str(project["inventory"]),
                  "-e", json.dumps({"release_version": VERSION}))
    assert release.returncode == 0, release.stdout[-4000:] + release.stderr[-2000:]
    record = json.loads((project["record"] / "release.json").read_text())
    names = list(record["phases"])
    assert names.index("verify") < names.index("announce") < names.index("tag")
    announce = record["phases"]["announce"]
    assert announce["status"] == "ok" and announce["changed"] is True
    assert announce["sent_to"] == str(project["base"] / "announce.txt") and announce["message"].startswith("Release")
    assert (project["base"] / "announce.txt").read_text() == "Release %s is out" % VERSION
    assert "db1 | announce: sent" in release.stdout
    report = (project["record"] / "report.md").read_text()
    assert "| announce | **ok** |" in report and report.index("| verify |") < report.index("| announce |")

    alone = run(copy, str(copy / ".venv/bin/ansible-playbook"), "release.yml", "-i", str(project["inventory"]),
                "-e", json.dumps({"release_version": VERSION}), "--tags", "announce")
    assert alone.returncode == 0, alone.stdout[-4000:]
    assert "TASK [announce : Send the release message]" in alone.stdout
    # Only the argument checks of the other phases' roles (tagged always) appear.
    assert re.findall(r"TASK \[(backup|schema|migrate|verify|grants) : (?!Validating arguments)", alone.stdout) == []
    assert json.loads((project["record"] / "release.json").read_text())["phases"]["announce"]["changed"] is False
