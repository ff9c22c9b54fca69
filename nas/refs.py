"""Resolve a REF: a registered name, a genotype JSON file, or STUDY:N / STUDY:best."""

from __future__ import annotations

import re
from pathlib import Path

from nas.errors import BadInput
from search_spaces import Arch, Genotype, GenotypeError, get_arch, list_models

MAX_GENOTYPE_BYTES = 1_000_000  # a genotype is a few KB; refuse to parse anything huge
STUDY_REF = re.compile(r"^(?P<study>[A-Za-z0-9_.-]+):(?P<trial>best|\d+)$")


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
    path = Path(ref)
    if ref.endswith(".json") or path.is_file():
        if not path.is_file():
            raise BadInput(f"genotype file {ref} does not exist")
        return Arch(path.stem, "genotype", load_genotype_file(path))
    match = STUDY_REF.match(ref)
    if match:
        raise BadInput(f"{ref}: study references need the search service (not built yet)")
    raise BadInput(
        f"unknown architecture {ref!r}; use a name from `nas list`, a genotype .json file, "
        "or STUDY:N / STUDY:best"
    )
