"""module_utils/dbrelease/job.py: which running jobs a new run waits for (Jobs.live, Jobs.wait_for_others)."""

from __future__ import annotations

import json
import os
import tempfile

import pytest
from ansible.module_utils.dbrelease import job


@pytest.fixture
def jobs(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return job.Jobs("schema")


def plant(jobs, state, pid, about):
    path = tempfile.mkdtemp(prefix=jobs.prefix)
    with open(os.path.join(path, "status.json"), "w") as handle:
        json.dump({"state": state, "pid": pid, "started": 0, "about": about}, handle)
    return path


def test_only_running_jobs_with_a_live_worker_on_the_same_target_count(jobs):
    mine = plant(jobs, "running", os.getpid(), {"db": "shop", "endpoint": "admin@db1:3306"})
    plant(jobs, "done", os.getpid(), {"db": "shop", "endpoint": "admin@db1:3306"})  # ended
    plant(jobs, "running", 2 ** 22 + 12345, {"db": "shop", "endpoint": "admin@db1:3306"})  # worker gone
    plant(jobs, "running", os.getpid(), {"db": "other", "endpoint": "admin@db1:3306"})  # another database
    found = jobs.live(db="shop", endpoint="admin@db1:3306")
    assert [f["job_dir"] for f in found] == [mine]
    assert job.Jobs("backup").live(db="shop") == []  # another kind of job


def test_waiting_returns_at_once_when_none_runs_and_gives_up_naming_those_still_running(jobs):
    assert jobs.wait_for_others(5, db="shop") == (0.0, [])
    plant(jobs, "running", os.getpid(), {"db": "shop"})
    waited, still = jobs.wait_for_others(0.3, every=0.1, db="shop")
    assert waited >= 0.3 and [s["pid"] for s in still] == [os.getpid()]
