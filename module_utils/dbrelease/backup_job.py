"""Detached backup jobs: the jobs of kind `backup` (job.py holds the mechanism, shared with the schema phase).

A cancelled, interrupted or failed backup worker removes its partial file: a dump is published only after it is
complete and verified, whatever happens to the controller.
"""

from __future__ import annotations

from ansible.module_utils.dbrelease import job
from ansible.module_utils.dbrelease.job import pid_alive, read_status, remove, touch_lease, write_status

JOBS = job.Jobs("backup", stopped_note="no backup was published and the partial file was removed")
JOB_PREFIX = JOBS.prefix

new_job_dir = JOBS.new_job_dir
sweep = JOBS.sweep
check_job_dir = JOBS.check_job_dir
lease_expired = JOBS.lease_expired
start = JOBS.start
status = JOBS.status
wait_status = JOBS.wait_status
cancel = JOBS.cancel
serve = JOBS.serve

__all__ = ["JOBS", "JOB_PREFIX", "cancel", "check_job_dir", "lease_expired", "new_job_dir", "pid_alive",
           "read_status", "remove", "serve", "start", "status", "sweep", "touch_lease", "wait_status",
           "write_status"]
