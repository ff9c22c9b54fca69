"""Errors the CLI turns into exit codes: `BadInput` is the user's to fix (exit 2)."""

from __future__ import annotations


class BadInput(Exception):
    """Bad input: unknown REF, malformed genotype or config, missing data. Exit code 2.

    The message is one line that says what is wrong and how to fix it.
    """
