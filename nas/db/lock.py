"""Who holds a study: the driver lock in `searches`, read without importing the search.

`nas status` shows the holder; `nas search` refuses a study a live driver holds. Both use
this one rule, and `nas status` stays free of optuna, torch and ray.
"""

from __future__ import annotations

import os
import time

from nas.db.store import SearchRecord, host_name

STALE_S = 30.0  # a lock not refreshed for this long belongs to a dead driver


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_holder(search: SearchRecord) -> str | None:
    """Who holds the study, if a live driver does: 'pid P on HOST, heartbeat Ns ago'."""
    if search.driver_token is None or search.heartbeat_at is None:
        return None
    age = time.time() - search.heartbeat_at.timestamp()
    if age > STALE_S:
        return None
    if search.driver_host == host_name() and search.driver_pid and not pid_alive(
        search.driver_pid
    ):
        return None  # same machine, process gone: it was killed
    return f"pid {search.driver_pid} on {search.driver_host}, heartbeat {age:.0f}s ago"
