"""Errors the CLI turns into exit codes: every `InputError` is the user's to fix (exit 2).

`BadInput` is the service's own kind of it; library errors (an unknown architecture, a
malformed genotype or config, missing data) derive from the same `InputError`, so `main()`
catches them all in one place and no command needs its own translation.
"""

from __future__ import annotations

from search_spaces.errors import InputError

__all__ = ["MAX_SEED", "BadInput", "InputError", "Terminated"]

MAX_SEED = 2**31 - 1  # every seed is stored in a 32-bit signed column: larger is bad input


class BadInput(InputError):
    """Bad input: unknown REF, malformed genotype or config, missing data. Exit code 2.

    The message is one line that says what is wrong and how to fix it.
    """


class Terminated(KeyboardInterrupt):
    """SIGTERM (docker stop, Kubernetes, systemd) stops a search the way Ctrl-C does: the
    running trials FAIL "interrupted (SIGTERM)", finished ones stay, exit code 143."""
