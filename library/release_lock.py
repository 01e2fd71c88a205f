#!/usr/bin/python
"""Ansible module: the release lock, one release at a time per database."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_lock
short_description: Take, refresh or release the per-database release lock
description:
  - One release at a time per database. The lock is a row in a lock table (default C(dbrelease.dbrelease_lock),
    one row per database, keyed by I(name)), so it lives across tasks, phases and connections, unlike
    C(GET_LOCK()) which dies with the connection of one task.
  - I(state=present) takes the lock with an atomic transaction (C(SELECT ... FOR UPDATE), then C(INSERT), or
    C(UPDATE ... WHERE token=<old>) when the lock has expired). A live lock of another release is refused with a
    message naming the holder (user, controller, pid, release, AWX job) and since when.
  - A lock whose expiry (C(expires_at), server clock) has passed belongs to a dead run and is taken over; the
    previous holder is returned in C(takeover) and kept in the row's C(takeover_of) column.
  - I(state=refresh) pushes the expiry forward (the phase mechanism sends it at the start of a phase once a third of
    the lock's TTL has passed since the last refresh); it fails if this run lost the lock.
  - I(state=absent) releases the lock, only with the holder's I(token).
  - The lock is the run's own bookkeeping, like the release record - taking, refreshing and releasing it report
    C(changed=false) so that a release that changes nothing in the database reports C(changed=0). C(acquired) and
    C(released) say what happened.
options:
  name:
    description: What is locked, normally the release database's name.
    type: str
    required: true
  state:
    description: C(present) takes the lock, C(refresh) pushes its expiry forward, C(absent) releases it, C(read)
      returns the current holder.
    type: str
    choices: [present, refresh, absent, read]
    default: present
  token:
    description: The holder's token returned by I(state=present). Required with C(refresh) and C(absent). With
      C(present), a token that already holds the lock makes the call re-entrant (a refresh).
    type: str
  holder:
    description:
      - Who takes the lock (C(controller), C(user), C(pid), C(release), C(awx_job_id), C(target)), stored as JSON.
      - The action plugin of the same name fills in, on the controller, what is not given - C(controller) (its host
        name), C(user), C(pid) (the ansible-playbook process), C(awx_job_id) (C(awx_job_id) or C($JOB_ID)) and
        C(target) (the inventory host).
    type: dict
    default: {}
  ttl_minutes:
    description: Minutes after the last heartbeat when the lock counts as abandoned and can be taken over.
    type: int
    default: 60
  force:
    description: Take over a live lock of another release. An operator decision for a run known to be dead; the
      previous holder is recorded.
    type: bool
    default: false
  lock_schema:
    description: Schema holding the lock table; created if missing.
    type: str
    default: dbrelease
  lock_table:
    description: Lock table name; created if missing.
    type: str
    default: dbrelease_lock
extends_documentation_fragment:
  - dbrelease.core.connection
attributes:
  check_mode:
    support: full
    details: I(state=present) only checks that the lock is free (or expired, or forced) and fails if another live
      release holds it; nothing is written.
author: dbrelease
"""

EXAMPLES = r"""
# The connection options come from the play's module_defaults (group/dbrelease.core.db).
- name: Take the release lock
  release_lock:
    name: arisgourmet
    holder: {release: v1.2.0}
    ttl_minutes: 60
  register: __lock_result
  no_log: true

- name: Release the release lock
  release_lock:
    name: arisgourmet
    state: absent
    token: "{{ __lock_result.token }}"
  no_log: true
"""

RETURN = r"""
acquired:
  description: Whether this call took (or re-entered) the lock.
  returned: state=present
  type: bool
would_acquire:
  description: In check mode, whether a real run would take the lock now.
  returned: state=present in check mode
  type: bool
released:
  description: Whether this call deleted the lock row.
  returned: state=absent
  type: bool
token:
  description: The holder's token, needed to refresh and release.
  returned: state=present
  type: str
holder:
  description: The holder as stored (dict) and C(holder_text), a one-line description.
  returned: when the lock is held
  type: dict
acquired_at:
  description: When the current holder took the lock (UTC, server clock).
  returned: when the lock is held
  type: str
expires_at:
  description: When the lock expires unless refreshed (UTC, server clock).
  returned: when the lock is held
  type: str
takeover:
  description: The previous holder of an expired (or forced) lock that this call took over, else null.
  returned: state=present
  type: dict
state:
  description: The state requested; present only when the call succeeded (failures carry only C(msg)).
  returned: success
  type: str
msg:
  description: What happened, in one sentence.
  returned: always
  type: str
record:
  description: What the release record keeps of the call (C(phases.lock)), written by the phase mechanism
    (C(release_phase)). On success C(name), C(table), C(lock_schema), C(lock_table), C(ttl_minutes), C(holder),
    C(token), C(acquired_at), C(expires_at), C(takeover), C(check_mode), C(message) (I(state=present)) or
    C(released), C(release_message) (I(state=absent)); on a refusal C(held_by), C(holder_found), C(held_since),
    C(expires_at).
  returned: always
  type: dict
record_busy:
  description: True when the lock is held by another run of the same release (the same C(holder.release)), or
    when this run lost the lock - the release record is that run's, and the phase mechanism writes nothing into it.
  returned: on failure
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease.db import (
    DbError,
    connect,
    connection_argument_spec,
    endpoint,
    require_pymysql,
    scrub,
)
from ansible.module_utils.dbrelease.lock import LockHeld, ReleaseLock


def row_outputs(row):
    if not row:
        return {}
    return {
        "holder": row["holder"], "holder_text": row["holder_text"], "acquired_at": row["acquired_at"],
        "heartbeat_at": row["heartbeat_at"], "expires_at": row["expires_at"], "expired": row["expired"],
    }


def record_part(p, result, check_mode):
    """What the release record keeps of a successful call."""
    base = {"name": p["name"], "table": "%s.%s" % (p["lock_schema"], p["lock_table"]),
            "lock_schema": p["lock_schema"], "lock_table": p["lock_table"]}
    if p["state"] == "present":
        return dict(base, holder=result.get("holder") or p["holder"], token=result.get("token"),
                    acquired_at=result.get("acquired_at"), expires_at=result.get("expires_at"),
                    ttl_minutes=p["ttl_minutes"], takeover=result.get("takeover"), check_mode=check_mode,
                    message=result.get("msg"))
    if p["state"] == "absent":
        return {"released": bool(result.get("released")), "release_message": result.get("msg")}
    if p["state"] == "refresh":
        return {"expires_at": result.get("expires_at")}
    return {}


def refusal_part(p, row):
    """What the release record keeps of a refusal: who holds the lock."""
    return {"name": p["name"], "table": "%s.%s" % (p["lock_schema"], p["lock_table"]),
            "held_by": (row or {}).get("holder_text"), "holder_found": (row or {}).get("holder"),
            "held_since": (row or {}).get("acquired_at"), "expires_at": (row or {}).get("expires_at")}


def same_release(p, row) -> bool:
    """Whether the live holder is another run of this release (then the release record is that run's)."""
    ours = (p["holder"] or {}).get("release")
    theirs = ((row or {}).get("holder") or {}).get("release") if isinstance((row or {}).get("holder"), dict) else None
    return bool(ours) and ours == theirs


def run(module, lock):
    p = module.params
    ttl = p["ttl_minutes"] * 60
    state = p["state"]
    if state == "read":
        row = lock.read()
        return dict(held=row is not None, msg="held by %s" % row["holder_text"] if row else "free",
                    **row_outputs(row))
    if state == "present":
        result = lock.acquire(p["holder"], ttl, token=p["token"], force=p["force"], check_mode=module.check_mode)
        takeover = row_outputs(result["takeover"]) or None
        out = dict(acquired=result["acquired"], token=result["token"], takeover=takeover,
                   reentrant=bool(result.get("reentrant")), **row_outputs(result["row"]))
        if module.check_mode:
            out["would_acquire"] = bool(result.get("would_acquire"))
            out["msg"] = ("the release lock of '%s' is free" % p["name"] if result["row"] is None else
                          "the release lock of '%s' is held by %s but %s" % (
                              p["name"], result["row"]["holder_text"],
                              "expired: a real run would take it over" if result["row"]["expired"] else
                              "lock_force is set: a real run would take it over" if p["force"] else
                              "this run holds it"))
        elif takeover:
            out["msg"] = "took over the release lock of '%s' from %s (acquired %s, expired %s)" % (
                p["name"], takeover["holder_text"], takeover["acquired_at"], takeover["expires_at"])
        else:
            out["msg"] = "holding the release lock of '%s' until %s" % (p["name"], out.get("expires_at"))
        return out
    if not p["token"]:
        module.fail_json(msg="release_lock: 'token' is required with state=%s" % state)
    if state == "refresh":
        row = lock.refresh(p["token"], ttl, check_mode=module.check_mode)
        return dict(msg="the release lock of '%s' is held until %s" % (p["name"], row["expires_at"]),
                    **row_outputs(row))
    result = lock.release(p["token"], check_mode=module.check_mode)
    return dict(released=result["released"] and not module.check_mode,
                msg=("released the release lock of '%s'" % p["name"]) if result["released"] else
                    "the release lock of '%s' was not held" % p["name"])


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "refresh", "absent", "read"], default="present"),
        token=dict(type="str", no_log=False),
        holder=dict(type="dict", default={}),
        ttl_minutes=dict(type="int", default=60),
        force=dict(type="bool", default=False),
        lock_schema=dict(type="str", default="dbrelease"),
        lock_table=dict(type="str", default="dbrelease_lock"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    require_pymysql(module)
    if module.params["ttl_minutes"] < 1:
        module.fail_json(msg="ttl_minutes must be at least 1 (got %d)" % module.params["ttl_minutes"])
    try:
        conn = connect(module.params)
    except DbError as exc:
        module.fail_json(msg=str(exc))
    try:
        lock = ReleaseLock(conn, module.params["name"], module.params["lock_schema"], module.params["lock_table"])
        result = run(module, lock)
    except LockHeld as exc:
        module.fail_json(msg=str(exc), record=refusal_part(module.params, exc.row),
                         record_busy=same_release(module.params, exc.row), **row_outputs(exc.row))
    except DbError as exc:
        # A refresh that finds the lock gone or taken over: the record belongs to whoever holds it now.
        module.fail_json(msg=scrub(str(exc), module.params), record={},
                         record_busy=module.params["state"] == "refresh")
    except Exception as exc:  # PyMySQL errors: name the endpoint, never the password
        module.fail_json(msg="release lock on %s failed: %s" % (endpoint(module.params),
                                                                  scrub(str(exc), module.params)))
    finally:
        conn.close()
    result["record"] = record_part(module.params, result, module.check_mode)
    module.exit_json(changed=False, state=module.params["state"], **result)


if __name__ == "__main__":
    main()
