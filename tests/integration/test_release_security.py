"""The whole release and a rollback, end to end, as a careful production setup runs them: a server that accepts
TLS only (a CA, server and client certificates made here), a release account with exactly the least privileges
(REQUIRE X509, a password holding every character that broke something, kept `!unsafe` in group_vars), after a run
killed with SIGKILL mid-plan that the release cleans up after. And a release_version that would climb out of the
artifacts directory writes nothing anywhere."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.dbrelease import privileges
from conftest import ROOT, short_tmpdir
from helpers import recap, run_playbook, write_inventory
from tls import create_account, make_pki, start_tls_server

VERSION = "v13.0.0-secure"
DB = "arisgourmet"
USER = "rel"
PASSWORD = " p€ü'\"\\#;={{ x }}{% if %}%s%%\tend-" + uuid.uuid4().hex[:8] + " "
PHASES = list(privileges.PHASES)
# The server runs with log_bin_trust_function_creators, so creating the example's trigger needs no SUPER: the
# account below has the privileges of the README's table and nothing more.
CONDITIONS = {"log_bin": True, "restore_test": True, "skip_binlog": True, "other_definers": True,
              "stored_code_binlog": False, "binlog_untrusted": False}


def load_example(box):
    box.sql("CREATE DATABASE `%s`" % DB)
    for name in ("schema_pre_release.sql", "seed.sql"):
        with open(ROOT / "examples/app/db" / name, "rb") as handle:
            subprocess.run(["mariadb", "--no-defaults", "-uroot", "-S", box.socket, DB], stdin=handle, check=True)


def make_repo(base: Path) -> Path:
    repo = base / "app-repo"
    shutil.copytree(ROOT / "examples/app", repo, ignore=shutil.ignore_patterns("node_modules"))
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.test", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.test")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "app"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    return repo


@pytest.fixture(scope="module")
def setup():
    base = Path(short_tmpdir("dbr-sec-"))
    pki = make_pki(base / "pki")
    box = start_tls_server(str(base / "db"), pki, extra_args=["--log-bin-trust-function-creators=ON"])
    load_example(box)
    grants = [g[len("GRANT "):].replace(" TO x", "")  # "<privileges> ON <object>[ WITH GRANT OPTION]"
              for g in privileges.grant_statements(DB, "dbrelease", PHASES, CONDITIONS, account="x")]
    create_account(box, USER, PASSWORD, require="REQUIRE X509", privileges=grants)
    inventory = base / "inventory" / "hosts.yml"
    host_vars = {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "release_db_name": DB, "release_db_host": "localhost", "release_db_port": box.port, "release_db_socket": "",
        "release_db_admin_user": USER, "release_db_ssl_ca": str(pki / "ca.pem"),
        "release_db_ssl_cert": str(pki / "client.pem"), "release_db_ssl_key": str(pki / "client.key"),
        "release_db_admin_hosts": ["localhost", "127.0.0.1"],
        "release_db_admin_privileges": {"default": privileges.priv_spec(DB, "dbrelease", PHASES, CONDITIONS)},
        "release_environment": "staging", "release_tag_environment": "staging",
        "release_ddl_files": [str(ROOT / "examples/app/infra/ddls/create_distributed_tables.sql")],
        "release_migration_command": "npm run migrate:run",
        "release_migration_chdir": str(ROOT / "examples/app/backend"),
        "release_backup_dir": str(base / "backups"), "release_artifacts_dir": str(base / "artifacts"),
        "release_git_repo": str(make_repo(base)),
    }
    write_inventory(inventory, {"db1": host_vars})
    # The password as the docs say to keep it: tagged !unsafe, so Ansible never templates its {{ }} and {% %}.
    group_vars = inventory.parent / "group_vars" / "databases"
    group_vars.mkdir(parents=True)
    (group_vars / "secrets.yml").write_text("release_db_admin_password: !unsafe %s\n" % json.dumps(PASSWORD))
    yield {"base": base, "box": box, "inventory": inventory, "pki": pki}
    box.destroy()
    shutil.rmtree(base, ignore_errors=True)


def out_of(proc):
    return proc.stdout + proc.stderr


def assert_no_password(*texts):
    for text in texts:
        assert PASSWORD.strip() not in text and json.dumps(PASSWORD)[1:-1] not in text


def plan_schemas(box):
    return [r[0] for r in box.sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE "
                                  "'%s\\_\\_dbrelease\\_plan\\_%%'" % DB)]


def files_holding_the_password(*roots):
    found = []
    for root in roots:
        for base, _dirs, names in os.walk(root):
            for name in names:
                path = os.path.join(base, name)
                try:
                    with open(path, "rb") as handle:
                        if PASSWORD.strip().encode() in handle.read():
                            found.append(path)
                except OSError:
                    pass
    return found


def descendants(pid: int) -> list[int]:
    """The processes started, directly or not, by `pid` (Ansible's workers start sessions of their own, so a
    process group does not hold them)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int):
    """SIGKILL `pid` (ansible-playbook) and everything it started: its workers and their module processes."""
    for target in [pid] + descendants(pid):
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass


def schema_job_workers():
    """The pids of the schema jobs running on this host (module_utils/dbrelease/job.py: their status files)."""
    pids = []
    for status in Path(tempfile.gettempdir()).glob("dbrelease-schema-job-*/status.json"):
        try:
            pid = json.loads(status.read_text()).get("pid")
        except (OSError, ValueError):
            continue
        if pid:
            pids.append(int(pid))
    return pids


def kill_mid_plan(setup):
    """Start a release and SIGKILL it while the schema plan's copy exists: ansible-playbook, its workers, and the
    schema job it started on the database host (which would otherwise outlive its controller until its lease
    expires), as when the machine running both goes down."""
    box = setup["box"]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "release.yml", "-i", str(setup["inventory"]),
           "-e", json.dumps({"release_version": VERSION})]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    blocker = box.root()
    try:
        deadline = time.monotonic() + 600
        while not plan_schemas(box):
            assert proc.poll() is None, proc.stdout.read()[-4000:]
            assert time.monotonic() < deadline, "the release never reached the schema plan"
            time.sleep(0.01)
        with blocker.cursor() as cur:
            cur.execute("FLUSH TABLES WITH READ LOCK")  # the plan's next statement waits: frozen mid-plan
        workers = schema_job_workers()
        kill_tree(proc.pid)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        with blocker.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        blocker.close()
        if proc.poll() is None:
            kill_tree(proc.pid)
    return proc


def test_a_killed_run_then_a_full_release_and_a_rollback_over_verified_tls_with_the_least_privileges(setup):
    box = setup["box"]
    killed = kill_mid_plan(setup)
    assert killed.returncode == -signal.SIGKILL
    left = plan_schemas(box)
    assert len(left) == 1, "the killed run left no plan schema to clean up"
    assert files_holding_the_password(os.path.expanduser("~/.ansible/tmp"), setup["base"]) == [], \
        "a killed run left the password on disk"

    # The release after it: the killed run's lock is taken over (its owner is gone), its leftovers removed.
    release = run_playbook("release.yml", setup["inventory"], extra_vars={"release_version": VERSION,
                                                                          "lock_force": True})
    text = out_of(release)
    assert release.returncode == 0, text[-8000:]
    # The schema, and the plan's temporary account when the kill came after it was created.
    assert re.search(r"removed [12] leftover\(s\) of killed runs: structure copy made for the schema plan %s" % left[0],
                     text)
    assert plan_schemas(box) == []
    assert not box.sql("SELECT User FROM mysql.user WHERE User LIKE 'dbrelease\\_plan\\_%'")
    assert "%s@127.0.0.1 has every privilege the phases preflight, lock, maintenance, backup, grants" % USER in text
    record = json.loads((setup["base"] / "artifacts" / VERSION / "release.json").read_text())
    for phase in ("preflight", "backup", "grants", "schema", "migrate", "verify", "tag"):
        assert record["phases"][phase]["status"] == "ok", (phase, record["phases"][phase])
    assert record["phases"]["preflight"]["leftovers"]["removed"][0]["name"] == left[0]
    assert [m for m in record["phases"]["preflight"]["privileges"]["missing"] if not m["optional"]] == []
    assert record["phases"]["migrate"]["changed"] is True  # knex (mysql2) connected over TLS with DB_SSL_*
    tables = {r[0] for r in box.sql("SHOW TABLES", DB)}
    assert {"outbox", "refresh_tokens", "knex_migrations"} <= tables
    assert_no_password(text, json.dumps(record), (setup["base"] / "artifacts" / VERSION / "report.md").read_text())

    rollback = run_playbook("rollback.yml", setup["inventory"], extra_vars={"release_version": VERSION,
                                                                            "release_rollback_confirm": True})
    assert rollback.returncode == 0, out_of(rollback)[-8000:]
    assert "outbox" not in {r[0] for r in box.sql("SHOW TABLES", DB)}
    assert_no_password(out_of(rollback))
    assert recap(rollback.stdout)["db1"]["failed"] == 0


@pytest.mark.parametrize("playbook, version", [
    ("release.yml", "../../escaped"),
    ("playbooks/backup.yml", "v9..1"),
    ("rollback.yml", "v1\n"),
])
def test_a_version_that_git_or_a_path_would_refuse_writes_nothing_anywhere(setup, playbook, version):
    base = setup["base"]

    def written():  # everything the release writes lives outside the server's own datadir
        return sorted(str(p) for p in base.rglob("*") if not str(p).startswith(str(base / "db")))

    before = written()
    proc = run_playbook(playbook, setup["inventory"], extra_vars={"release_version": version,
                                                                  "release_rollback_confirm": True})
    assert proc.returncode != 0
    assert "release_version" in out_of(proc)
    assert written() == before, "something was written"
    assert not (base / "escaped").exists() and not (base.parent / "escaped").exists()


def test_a_vaulted_option_file_carries_the_password_without_ansible_ever_templating_it(setup, tmp_path):
    """The vault path safe by construction: an ansible-vault encrypted client option file, read by preflight's
    lookup (as the AWX credential's file is), whose result Ansible never templates: `{{ x }}` stays as typed."""
    from ansible.module_utils.dbrelease.db import option_file_text

    hosts = yaml.safe_load(setup["inventory"].read_text())
    inventory = write_inventory(tmp_path / "inv" / "hosts.yml",
                                hosts["all"]["children"]["databases"]["hosts"])  # no group_vars: no password
    option_file = tmp_path / "db_admin.cnf"
    option_file.write_text(option_file_text({"login_user": USER, "login_password": PASSWORD}))
    vault_pass = tmp_path / "vault-pass"
    vault_pass.write_text(uuid.uuid4().hex + "\n")
    subprocess.run([str(Path(sys.executable).parent / "ansible-vault"), "encrypt", "--vault-password-file",
                    str(vault_pass), str(option_file)], check=True, capture_output=True)
    assert option_file.read_text().startswith("$ANSIBLE_VAULT")
    proc = run_playbook("playbooks/preflight.yml", inventory,
                        extra_vars={"release_version": VERSION + "-vault",
                                    "release_db_admin_option_file": str(option_file)},
                        args=["--vault-password-file", str(vault_pass)])
    assert proc.returncode == 0, out_of(proc)[-6000:]
    assert "%s@127.0.0.1 has every privilege" % USER in proc.stdout
    assert_no_password(out_of(proc))
