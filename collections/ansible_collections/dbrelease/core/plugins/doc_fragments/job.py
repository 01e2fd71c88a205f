"""The options of the job protocol (module_utils/dbrelease/job.py: argument_spec()), documented once for every
module that runs as a detached job. Each module documents its own `mode` (what its run does)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  job_dir:
    description: Job directory returned by I(mode=start); for C(status) and C(cancel).
    type: path
  wait_seconds:
    description: With I(mode=status), wait up to this long for the job to end before answering (a long poll; the end
      is seen within 0.1 s). At most half of I(lease_seconds).
    type: float
    default: 0
  lease_seconds:
    description: A detached job stops, as if cancelled (cleaning up what it started), when no status call came for
      this long.
    type: int
    default: 120
"""
