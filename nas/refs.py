"""Resolve a REF: a registered name, a genotype JSON file, or STUDY:N / STUDY:best."""

from __future__ import annotations

import re
from pathlib import Path

from nas.errors import BadInput
from search_spaces import Arch, Genotype, GenotypeError, get_arch, list_models

MAX_GENOTYPE_BYTES = 1_000_000  # a genotype is a few KB; refuse to parse anything huge
MAX_REF = 4096  # the longest path the OS takes; a name or STUDY:N is far shorter
STUDY_REF = re.compile(r"(?P<study>[A-Za-z0-9_.-]{1,128}):(?P<trial>best|\d{1,9})")


def shown(ref: str, limit: int = 80) -> str:
    """A REF as error messages quote it: cut to `limit` characters, so a 5,000-character
    argument does not become a 5,000-character error line."""
    return repr(ref) if len(ref) <= limit else repr(ref[:limit]) + f"… ({len(ref):,} characters)"


def load_genotype_file(path: Path) -> Genotype:
    """Read and validate a genotype JSON file (as `nas show --json` or `nas export` write it)."""
    try:
        size = path.stat().st_size
        if size > MAX_GENOTYPE_BYTES:
            raise BadInput(
                f"{path} is {size:,} bytes; a genotype file is at most {MAX_GENOTYPE_BYTES:,}"
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read genotype file {path}: {exc}") from None
    try:
        return Genotype.from_json(text)
    except GenotypeError as exc:
        raise BadInput(f"{path}: {exc}") from None


def resolve_ref(ref: str, storage: str | None = None) -> Arch:
    """Turn a REF into an `Arch`, or raise BadInput naming what REFs look like."""
    names = {arch.name for arch in list_models()}
    if ref in names:
        return get_arch(ref)
    if len(ref) > MAX_REF or "\0" in ref:
        raise BadInput(f"REF {shown(ref)} is not a name, a file path or STUDY:N; see `nas list`")
    path = Path(ref)
    try:
        is_file = path.is_file()
    except OSError as exc:  # a path component longer than the OS allows
        raise BadInput(f"cannot use REF {shown(ref)} as a file: {exc.strerror}") from None
    if ref.endswith(".json") or is_file:
        if not is_file:
            raise BadInput(f"genotype file {shown(ref)} does not exist")
        return Arch(path.stem, "genotype", load_genotype_file(path))
    match = STUDY_REF.fullmatch(ref)
    if match:
        return resolve_study_ref(match["study"], match["trial"], storage)
    raise BadInput(
        f"unknown architecture {shown(ref)}; use a name from `nas list`, a genotype .json "
        "file, or STUDY:N / STUDY:best"
    )


def resolve_study_ref(study: str, trial: str, storage: str | None) -> Arch:
    """STUDY:N (trial N) or STUDY:best (highest validation accuracy) from the database."""
    from nas.db import DatabaseError, open_database

    if storage is None:
        raise BadInput(f"{study}:{trial} needs a database; pass --storage URL")
    try:
        db = open_database(storage, create=False)
    except DatabaseError as exc:
        raise BadInput(str(exc)) from None
    try:
        search = db.search(study)
        if search is None:
            names = ", ".join(s.name for s in db.searches()) or "none yet"
            raise BadInput(f"no study {study!r} in {db.display_url} (studies: {names})")
        if trial == "best":
            record = db.best_trial(search.search_id)
            if record is None:
                raise BadInput(f"study {study!r} has no COMPLETE trial yet; see `nas status`")
        else:
            record = db.trial(search.search_id, int(trial))
            if record is None:
                raise BadInput(f"study {study!r} has no trial {trial}; see `nas leaderboard`")
        if record.genotype is None:
            raise BadInput(f"trial {record.number} of study {study!r} has no genotype")
        genotype = Genotype.from_dict(record.genotype)
    except GenotypeError as exc:
        raise BadInput(f"{study}:{trial}: stored genotype is invalid: {exc}") from None
    finally:
        db.close()
    return Arch(f"{study}:{record.number}", "genotype", genotype, record.cells, record.filters,
                record.stem_stride)
