#!/usr/bin/python
"""Ansible module: the replication topology of a database endpoint and its replicas' lag (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: db_topology
short_description: Learn whether an endpoint is a primary or a replica, its replicas and their lag
description:
  - Reads the endpoint's role (C(primary) or C(replica) - a replica replicates from a source, even with its threads
    stopped, or has C(read_only) on), its replication connections (C(SHOW ALL SLAVES STATUS) on MariaDB,
    C(SHOW REPLICA STATUS) on MySQL 8.0.22+, C(SHOW SLAVE STATUS) before), the replicas it lists (C(SHOW SLAVE HOSTS)
    / C(SHOW REPLICAS), for replicas that set C(report_host)), its binary log dump threads, and its GTID mode.
  - Connects to each replica named in I(replicas) and reads its lag (C(Seconds_Behind_Master) /
    C(Seconds_Behind_Source), the age of the event a delayed replica waits on, and whether it has executed this
    endpoint's binary log position - C(Seconds_Behind_Master) alone reads 0 before a replica has received or
    started applying the latest writes; a stopped SQL or IO thread is unknown lag) and whether it replicates from
    this endpoint (its source server_id). Replicas the endpoint lists that I(replicas) does not name are reported in
    C(unlisted_replicas), since their lag is not checked.
  - With I(require_primary), fails when the endpoint is a replica (DDL runs on the primary only).
  - With I(max_lag), waits up to I(wait_seconds) for every replica's lag to be known and at most I(max_lag)
    seconds, and fails naming the replicas that are not.
  - Read-only; never changes anything.
options:
  replicas:
    description: The endpoint's replicas from the inventory (C(name), C(host), C(port), C(socket); the
      endpoint's account unless C(user)/C(password) are given).
    type: list
    elements: dict
    default: []
  require_primary:
    description: Fail when the endpoint is a replica.
    type: bool
    default: false
  require_replicas:
    description: Fail when a replica named in I(replicas) cannot be reached, has no replication set up, or
      replicates from another server than this endpoint (the inventory is wrong). A replica that lags, or whose
      threads are stopped, does not fail here (see I(max_lag)).
    type: bool
    default: false
  max_lag:
    description: Largest lag (seconds) allowed for every replica; unset reads the lag without judging it.
    type: float
  wait_seconds:
    description: How long to wait for the replicas' lag to come under I(max_lag).
    type: int
    default: 0
extends_documentation_fragment:
  - dbrelease.core.connection
notes:
  - Reading replication status needs REPLICATION CLIENT (MySQL), REPLICA MONITOR / SLAVE MONITOR (MariaDB 10.5+)
    or SUPER; without it the status is reported as unknown in C(topology.notes), not guessed.
attributes:
  check_mode:
    support: full
    details: read-only; the same in check mode.
author: dbrelease
"""

EXAMPLES = r"""
# The connection (login_*) comes from the play: module_defaults over group/dbrelease.core.db.
- name: Learn the topology and the replicas' lag
  db_topology:
    replicas:
      - {name: db2, host: db2.internal, port: 3306}
    require_primary: true
  no_log: true
  register: __preflight_topology

- name: Wait for the replicas to catch up (between fleet batches)
  db_topology:
    replicas: "{{ release_db_replicas }}"
    max_lag: 10
    wait_seconds: 300
  no_log: true
"""

RETURN = r"""
topology:
  description: C(role), C(read_only), C(super_read_only), C(replication) (each source connection with its threads
    and lag), C(replicas_listed), C(binlog_dump_threads), C(gtid), C(binlog), C(endpoint_server_id), C(notes).
  returned: success
  type: dict
replicas:
  description: Per replica named in I(replicas) - C(lag_seconds) (null when unknown; 0 only when it has executed
    the endpoint's binary log position, at least 0.1 when it has not; see module_utils/dbrelease/topology.py),
    C(caught_up) (null when the positions cannot be compared), C(io_running), C(sql_running), C(sql_delay),
    C(source_server_id), C(reason).
  returned: success
  type: dict
unlisted_replicas:
  description: Replicas the endpoint lists (or streams its binary log to) that I(replicas) does not name.
  returned: success
  type: list
lag_max_seconds:
  description: The largest known replica lag.
  returned: success
  type: float
waited_seconds:
  description: How long the lag gate waited (with I(max_lag)).
  returned: when max_lag is set
  type: float
endpoint:
  description: The endpoint, as C(user@host:port) or C(user@socket PATH).
  returned: always
  type: str
record:
  description: What the release record keeps - C(topology) (C(role), C(read_only), C(super_read_only),
    C(replication), C(replicas_listed), C(gtid), C(binlog), C(notes)), C(replicas) (lag per inventory replica),
    C(unlisted_replicas), C(lag_max_seconds), C(waited_seconds).
  returned: success, and when the replicas' lag stays too high
  type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease import topology
from ansible.module_utils.dbrelease.db import (
    DbError,
    connect,
    connection_argument_spec,
    endpoint,
    require_pymysql,
    scrub,
    server_info,
)

# Reasons of an unknown lag that say the inventory is wrong (not that the replica is behind).
INVENTORY_ERRORS = ("cannot connect", "it replicates from server_id", "no replication is set up")


def unlisted(topo, replicas, params):
    """Replicas the endpoint knows of that the inventory does not name (matched on host and port)."""
    named = set()
    for replica in replicas:
        rp = topology.replica_params(params, replica)
        named.add((str(rp.get("login_host")), int(rp.get("login_port") or 3306)))
    found = []
    for listed in topo["replicas_listed"]:
        if (listed["host"], listed["port"]) not in named:
            found.append({"server_id": listed["server_id"], "host": listed["host"], "port": listed["port"],
                          "seen_by": "replica list"})
    if not topo["replicas_listed"]:
        hosts = {r[0] for r in named}
        for dump in topo["binlog_dump_threads"]:
            client = (dump["client"] or "").rsplit(":", 1)[0]
            if client not in hosts:
                found.append({"client": dump["client"], "user": dump["user"], "seen_by": "binary log dump thread"})
    return found


def run(params, clock=time.monotonic):
    where = endpoint(params)
    result = {"changed": False, "endpoint": where}
    conn = connect(params)
    try:
        info = server_info(conn)
        topo = topology.describe(conn, info)
        result["topology"] = topo
        result["server"] = info
        if params["require_primary"]:
            refusal = topology.replica_refusal(topo, where)
            if refusal:
                raise topology.TopologyRefused(refusal)
        replicas = params.get("replicas") or []
        result["unlisted_replicas"] = unlisted(topo, replicas, params)
        # The endpoint's connection stays open for the lag reads: each compares its binary log position with
        # what the replicas have executed.
        group = topology.Replicas(params, replicas, topo["endpoint_server_id"], primary=conn,
                                  primary_flavor=info["flavor"], clock=clock)
        try:
            result["replicas"] = group.lags() if group else {}
            if params.get("require_replicas"):
                wrong = {name: info["reason"] for name, info in result["replicas"].items()
                         if info["reason"].startswith(INVENTORY_ERRORS)}
                if wrong:
                    raise topology.TopologyRefused(
                        "release_db_replicas names replica(s) that are not replicas of %s: %s; fix the inventory" % (
                            where, "; ".join("%s: %s" % item for item in sorted(wrong.items()))))
            if params.get("max_lag") is not None and group:
                seen = group.wait(params["max_lag"], clock() + int(params.get("wait_seconds") or 0), clock=clock,
                                  setting="max_lag")
                result["replicas"], result["waited_seconds"] = seen["lags"], seen["waited"]
        finally:
            group.close()
    finally:
        conn.close()
    known = [r["lag_seconds"] for r in result["replicas"].values() if r.get("lag_seconds") is not None]
    result["lag_max_seconds"] = max(known) if known else None
    result["record"] = record_part(result)
    return result


def record_part(result):
    topo = result.get("topology") or {}
    return {"topology": {k: topo.get(k) for k in ("role", "read_only", "super_read_only", "replication",
                                                  "replicas_listed", "gtid", "binlog", "notes")},
            "replicas": result.get("replicas", {}), "unlisted_replicas": result.get("unlisted_replicas", []),
            "lag_max_seconds": result.get("lag_max_seconds"), "waited_seconds": result.get("waited_seconds")}


def result_line(result):
    """One line for the operator."""
    topo = result["topology"]
    lags = ", ".join("%s %s" % (name, topology.lag_text(info)) for name, info in sorted(result["replicas"].items()))
    line = "%s is a %s (read_only %s); replicas: %s" % (
        result["endpoint"], topo["role"], "on" if topo["read_only"] else "off", lags or "none in the inventory")
    if result["unlisted_replicas"]:
        line += "; not in the inventory (lag not checked): %s" % ", ".join(
            "%s:%s" % (r["host"], r["port"]) if "host" in r else "a client at %s" % r["client"]
            for r in result["unlisted_replicas"])
    return line


def main():
    spec = connection_argument_spec()
    spec.update(replicas=dict(type="list", elements="dict", default=[]),
                require_primary=dict(type="bool", default=False),
                require_replicas=dict(type="bool", default=False),
                max_lag=dict(type="float"),
                wait_seconds=dict(type="int", default=0))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    require_pymysql(module)
    where = endpoint(module.params)
    try:
        result = run(module.params)
    except DbError as exc:
        module.fail_json(msg="%s. Check release_db_host/release_db_port/release_db_socket and the admin "
                             "credentials." % exc, endpoint=where)
    except topology.TopologyRefused as exc:
        module.fail_json(msg=scrub(str(exc), module.params), endpoint=where)
    except topology.LagTooHigh as exc:
        module.fail_json(msg=scrub(exc.message(), module.params), endpoint=where, replicas=exc.lags,
                         record={"replicas": exc.lags, "waited_seconds": round(exc.waited, 1)})
    module.exit_json(msg=result_line(result), **result)


if __name__ == "__main__":
    main()
