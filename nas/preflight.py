"""Checks made before the work: everything a command needs at its end (the database, the
output directory, the memory for the network) is tried at its start.

Why: `nas train` used to find a malformed `NAS_STORAGE` or an `--out` it could not write
only after training had finished, so the run was wasted and its checkpoint lost or left
without a row; a network too large for the machine was allocated before anything said so.
Each check here raises BadInput (exit 2, one line) and leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nas.errors import BadInput

# Documented caps (docs/reliability.md, "Size before allocation"). NASNet-A Large, the
# largest published network here, has 88.9M parameters and 23.8G mult-adds.
MAX_PARAMS = 2_000_000_000  # 8 GB of float32 weights, 22x NASNet-A Large
MAX_MULT_ADDS = 2_000_000_000_000  # 2T per image, 84x NASNet-A Large


def check_storage(storage: str | None) -> None:
    """Open the database (creating our schema, as the command's own write would) and close
    it: a malformed URL, a missing directory or a server that refuses fail now, not after
    training."""
    if storage is None:
        return
    from nas.db import DatabaseError, open_database

    try:
        open_database(storage).close()
    except DatabaseError as exc:
        raise BadInput(f"{exc}; fix --storage / NAS_STORAGE before training") from None


def check_storage_url(storage: str | None) -> None:
    """Only the URL's form, for commands that never write the database (nas export): a
    typo in NAS_STORAGE is named, and no database file is created."""
    if storage is None:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from nas.db import normalize_url

    try:
        make_url(normalize_url(storage))
    except ArgumentError:
        raise BadInput("--storage / NAS_STORAGE is not a database URL; use sqlite:///FILE "
                       "or postgresql+psycopg://USER@HOST:PORT/DB") from None


def out_problem(out: Path) -> str | None:
    """Why `out` cannot be a directory nas writes into, without touching the disk: a
    dangling symlink, a regular file, or a path under a regular file; None if none."""
    if out.is_symlink() and not out.exists():
        return f"--out {out} is a symlink to {os.readlink(out)}, which does not exist"
    for path in (out, *out.parents):
        if path.exists() and not path.is_dir():
            where = "is" if path == out else f"lies under {path}, which is"
            return f"--out {out} {where} a file, not a directory"
    return None


def check_out_dir(out: Path, label: str = "--out") -> None:
    """Make sure files can be written into `out`: create it, write and remove a probe file.
    Directories this check created are removed again, so bad input leaves nothing; the
    command creates them for real when it writes. `label` names `out` in the message."""
    out = Path(out)
    problem = out_problem(out)
    if problem is not None:
        raise BadInput(f"{problem}; give a directory nas can write into")
    missing = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".nas-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BadInput(f"cannot write into {label} {out}: {exc.strerror or exc}; give a "
                       "directory nas can write into") from None
    finally:
        for path in missing:  # deepest first
            try:
                path.rmdir()
            except OSError:
                break


def check_cost(params: int, mult_adds: int, what: str) -> None:
    """Refuse a network beyond the documented caps: counted on the meta device, before any
    real allocation."""
    if params > MAX_PARAMS:
        raise BadInput(f"{what} has {params:,} parameters, above the cap of {MAX_PARAMS:,}; "
                       "use fewer --cells or --filters")
    if mult_adds > MAX_MULT_ADDS:
        raise BadInput(f"{what} needs {mult_adds:,} mult-adds per image, above the cap of "
                       f"{MAX_MULT_ADDS:,}; use fewer --cells, --filters or a smaller "
                       "--image-size")


def available_memory() -> int:
    """Bytes this machine can still give: MemAvailable, else all physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(needed: int, what: str) -> None:
    """Refuse a real allocation the machine cannot hold (a lower bound: weights and the
    copies the command makes, activations not counted)."""
    free = available_memory()
    if needed > free:
        raise BadInput(f"{what} needs at least {needed / 2**30:,.1f} GiB of memory and this "
                       f"machine has {free / 2**30:,.1f} GiB available; use fewer --cells "
                       "or --filters")


__all__ = [
    "MAX_MULT_ADDS",
    "MAX_PARAMS",
    "available_memory",
    "check_cost",
    "check_memory",
    "check_out_dir",
    "check_storage",
    "check_storage_url",
    "out_problem",
]
