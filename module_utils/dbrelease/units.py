"""Human-readable sizes: the one formatter of byte counts in messages and progress lines.

Stdlib only (it runs on target hosts and on the controller).
"""

from __future__ import annotations


def human_bytes(count: float) -> str:
    """`512 B`, `1.5 KiB`, `3.2 GiB`, `1.1 TiB` (binary units, one decimal above bytes)."""
    count = float(count or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024:
            return ("%d %s" % (count, unit)) if unit == "B" else ("%.1f %s" % (count, unit))
        count /= 1024.0
    return "%.1f TiB" % count
