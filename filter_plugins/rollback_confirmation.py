"""Filter plugin: rollback_confirmation, what rollback.yml states before it asks for the confirmation."""

from __future__ import annotations

DOCUMENTATION = r"""
name: rollback_confirmation
short_description: The text rollback.yml shows before the confirmation - each mode, the backup's age, what was written
description:
  - Says which mode is which (C(schema), C(restore), C(pitr)), marks the one chosen, and for it gives the facts read
    from the server - the backup's age, what was written since it (binary log transactions, row count changes),
    for C(pitr) what was written after the stop position (lost), for C(schema) the reverse plan's steps and what it
    would lose.
  - C(lossy) is true when the chosen mode loses something written since the release that C(schema) or C(pitr)
    would keep, or, for C(schema), when the reverse plan is not lossless.
positional: facts
options:
  _input:
    description: The mode chosen (C(schema), C(restore), C(pitr)).
    type: str
    required: true
  facts:
    description:
      - C(database), C(host), C(now) (ISO time), C(backup) (C(path), C(sha256), C(finished), C(position)),
        C(since_backup) (binlog_info's result from the backup's position), C(stop) (the position before the
        release's first DDL), C(since_stop) (binlog_info's result from it), C(reverse) (schema_reverse's result),
        C(keep_previous) (the database is kept aside by a restore).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Say what each mode would do
  ansible.builtin.debug:
    msg: "{{ (rollback_mode | rollback_confirmation(facts)).text }}"
"""

RETURN = r"""
_value:
  description: C(text) (lines joined), C(lines), C(lossy).
  type: dict
"""

import datetime

from ansible.errors import AnsibleFilterError

MODES = ("schema", "restore", "pitr")


def _parse(text):
    try:
        value = datetime.datetime.fromisoformat(str(text))
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def age(then, now) -> str:
    """`3 d 4 h`, `5 h 12 min`, `7 min` between two ISO times; `of unknown age` when either is missing."""
    a, b = _parse(then), _parse(now)
    if not a or not b:
        return "of unknown age"
    minutes = max(0, int((b - a).total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return "%d d %d h old" % (days, hours)
    if hours:
        return "%d h %d min old" % (hours, minutes)
    return "%d min old" % minutes


def written(info) -> str:
    """What binlog_info says was written (transactions, row count changes), or why it cannot say."""
    info = info or {}
    parts = []
    writes = info.get("writes")
    if writes:
        text = "%d transaction(s) on the database (%d row event(s), %d statement(s))" % (
            writes.get("transactions", 0), writes.get("row_events", 0), writes.get("statement_events", 0))
        if not writes.get("complete", True):
            text = "at least " + text
        parts.append(text)
    elif info.get("writes_error"):
        parts.append("the binary log cannot tell (%s)" % info["writes_error"])
    rows = info.get("rows")
    if rows:
        moved = ["%s %+d" % (table, row["difference"]) for table, row in sorted(rows.items()) if row.get("difference")]
        parts.append("row counts since the backup: %s" % (", ".join(moved) if moved else "unchanged"))
    return "; ".join(parts) or "unknown"


def _transactions(info):
    return ((info or {}).get("writes") or {}).get("transactions")


def rollback_confirmation(mode, facts):
    if mode not in MODES:
        raise AnsibleFilterError("rollback_confirmation: unknown release_rollback_mode %r, expected one of %s"
                                 % (mode, ", ".join(MODES)))
    if not isinstance(facts, dict):
        raise AnsibleFilterError("rollback_confirmation expects a dict of facts, got %s" % type(facts).__name__)
    backup = facts.get("backup") or {}
    since = facts.get("since_backup")
    reverse = facts.get("reverse")
    lines = ["Rollback of database %s on %s, release_rollback_mode=%s. The modes:" % (
        facts.get("database", "?"), facts.get("host", "?"), mode)]
    described = {
        "schema": "reverse the release's schema changes through schema_apply, keeping every row written to the tables "
                  "that existed before it",
        "restore": "restore the verified backup %s: the database goes back to the moment of the backup, and every "
                   "write made since is lost" % (backup.get("path") or "(none recorded)"),
        "pitr": "restore that backup, then replay the binary logs up to the position recorded just before the "
                "release's first DDL: the writes made between the backup and the release are kept, those made "
                "after it started are lost",
    }
    for name in MODES:
        lines.append("%s %-7s - %s" % ("->" if name == mode else "  ", name, described[name]))
    lossy = False
    if mode in ("restore", "pitr"):
        lines.append("The backup: %s, sha256 %s, taken %s%s." % (
            backup.get("path") or "?", backup.get("sha256") or "?", backup.get("finished") or "at an unknown time",
            " (%s)" % age(backup.get("finished"), facts.get("now")) if backup.get("finished") else ""))
        lines.append("Written since the backup: %s." % written(since))
        keep = facts.get("keep_previous", True)
        if mode == "restore":
            lossy = bool(_transactions(since)) or any(r.get("difference") for r in ((since or {}).get("rows") or {})
                                                      .values())
            if lossy:
                lines.append("A restore loses those writes%s." % (
                    " (the database as it is now is kept aside as <db>__before_rollback_<stamp>)" if keep else ""))
        else:
            stop = facts.get("stop") or {}
            lines.append("Replayed up to %s (the position before the release's first DDL); written after it, and "
                         "lost: %s." % ("%s:%s" % (stop.get("file"), stop.get("pos")) if stop else "(not recorded)",
                                        written(facts.get("since_stop"))))
            lossy = bool(_transactions(facts.get("since_stop")))
    else:
        if not reverse:
            lines.append("The reverse plan could not be computed.")
            lossy = True
        else:
            steps = reverse.get("steps") or []
            lines.append("The reverse plan: %d step(s)%s" % (len(steps), ":" if steps else " (nothing to reverse)."))
            lines += ["  - %s" % step for step in steps]
            losses = reverse.get("losses") or []
            left = reverse.get("not_reversed") or []
            if losses:
                lines.append("It cannot keep:")
                lines += ["  - %s" % loss for loss in losses]
            if left:
                lines.append("It leaves as they are:")
                lines += ["  - %s" % item for item in left]
            lossy = not reverse.get("lossless", False)
            lines.append("The reverse plan is %s." % (
                "lossless" if not lossy else "NOT lossless: it needs -e release_rollback_accept_loss=true too"))
    return {"text": "\n".join(lines), "lines": lines, "lossy": lossy}


class FilterModule:
    def filters(self):
        return {"rollback_confirmation": rollback_confirmation}
