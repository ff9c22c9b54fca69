"""Errors the CLI turns into exit codes: every `InputError` is the user's to fix (exit 2).

`BadInput` is the service's own kind of it; library errors (an unknown architecture, a
malformed genotype or config, missing data) derive from the same `InputError`, so `main()`
catches them all in one place and no command needs its own translation.
"""

from __future__ import annotations

import threading

from search_spaces.errors import InputError

__all__ = ["MAX_SEED", "BadInput", "InputError", "Terminated", "by_sigterm", "note_sigterm"]

MAX_SEED = 2**31 - 1  # every seed is stored in a 32-bit signed column: larger is bad input


class BadInput(InputError):
    """Bad input: unknown REF, malformed genotype or config, missing data. Exit code 2.

    The message is one line that says what is wrong and how to fix it.
    """


class Terminated(KeyboardInterrupt):
    """SIGTERM (docker stop, Kubernetes, systemd) stops a search the way Ctrl-C does: the
    running trials FAIL "interrupted (SIGTERM)", finished ones stay, exit code 143."""


# Set when SIGTERM arrives: Ray turns an exception raised by a signal handler inside one of its
# blocking calls (ray.wait, ray.get) into a plain KeyboardInterrupt, so the type alone would
# lose that the stop came from SIGTERM.
_sigterm = threading.Event()


def note_sigterm(received: bool = True) -> None:
    """Record (or, with False, forget) that this process was sent SIGTERM."""
    if received:
        _sigterm.set()
    else:
        _sigterm.clear()


def by_sigterm(exc: BaseException) -> bool:
    """Whether this interruption is SIGTERM's, even after Ray re-raised it as Ctrl-C's."""
    return isinstance(exc, Terminated) or (isinstance(exc, KeyboardInterrupt)
                                            and _sigterm.is_set())
