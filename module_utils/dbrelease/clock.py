"""Timestamps: the one place that formats the current UTC time (records, file names, reports).

Stdlib only (it runs on target hosts and on the controller).
"""

from __future__ import annotations

import datetime


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def utc_now_iso(now: datetime.datetime | None = None) -> str:
    """`2026-11-30T06:18:14+00:00`: the timestamps of release.json (seconds, UTC, sortable as text)."""
    return (now or utc_now()).astimezone(datetime.timezone.utc).isoformat(timespec="seconds")


def utc_stamp(now: datetime.datetime | None = None) -> str:
    """`20261130T061814Z`: the timestamp in backup and output file names."""
    return (now or utc_now()).astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def parse_iso(text: str) -> datetime.datetime | None:
    """A timestamp written by utc_now_iso (or any ISO 8601 with an offset); None when it is not one."""
    try:
        value = datetime.datetime.fromisoformat(str(text))
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
