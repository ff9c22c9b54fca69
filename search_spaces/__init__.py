"""What can be searched and built: ops, genotypes, the cell network, baselines, cost.

The public names load on first use (PEP 562): `from search_spaces import Genotype` imports
torch, but `import search_spaces.errors` does not, so commands that only read stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from search_spaces.errors import DISTRIBUTION as DISTRIBUTION
from search_spaces.errors import InputError as InputError
from search_spaces.errors import package_version as package_version

_HOME = {
    "BASELINES": "baselines", "build_baseline": "baselines",
    "Cost": "cost", "count_cost": "cost", "count_mult_adds": "cost", "count_params": "cost",
    "NUM_BLOCKS": "genotype", "Block": "genotype", "Cell": "genotype", "Genotype": "genotype",
    "GenotypeError": "genotype",
    "ConfigError": "network", "Network": "network", "NetworkConfig": "network",
    "build_network": "network",
    "OPS": "ops", "SEARCHABLE_OPS": "ops",
    "PUBLISHED": "published",
    "Arch": "registry", "UnknownModelError": "registry", "get_arch": "registry",
    "get_model": "registry", "list_models": "registry", "register_model": "registry",
    "choices": "space", "genotype_from_params": "space", "params_from_genotype": "space",
    "sample_genotype": "space",
}

__all__ = sorted([*_HOME, "DISTRIBUTION", "InputError", "package_version"])


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'search_spaces' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"search_spaces.{_HOME[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
