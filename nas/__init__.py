"""The nas service: CLI, controller, Ray dispatch, database, export, reports.

Kept import-light: `nas --help`, `nas status` and `nas leaderboard` must answer without
loading torch or ray, so heavy modules are imported by the functions that need them.
"""

from __future__ import annotations

from typing import Any

from nas.errors import BadInput

__all__ = ["BadInput", "resolve_ref"]


def resolve_ref(ref: str, storage: str | None = None) -> Any:
    """Turn a REF into an `Arch` (see `nas.refs.resolve_ref`); imports torch on first use."""
    from nas.refs import resolve_ref as resolve

    return resolve(ref, storage)
