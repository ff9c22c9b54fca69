"""What can be searched and built: ops, genotypes, the cell network, baselines, cost."""

from search_spaces.baselines import BASELINES, build_baseline
from search_spaces.cost import Cost, count_cost, count_mult_adds, count_params
from search_spaces.genotype import NUM_BLOCKS, Block, Cell, Genotype, GenotypeError
from search_spaces.network import ConfigError, Network, NetworkConfig, build_network
from search_spaces.ops import OPS, SEARCHABLE_OPS
from search_spaces.published import PUBLISHED
from search_spaces.registry import (
    Arch,
    UnknownModelError,
    get_arch,
    get_model,
    list_models,
    register_model,
)
from search_spaces.space import choices, genotype_from_params, params_from_genotype, sample_genotype

__all__ = [
    "BASELINES",
    "NUM_BLOCKS",
    "OPS",
    "PUBLISHED",
    "SEARCHABLE_OPS",
    "Arch",
    "Block",
    "Cell",
    "ConfigError",
    "Cost",
    "Genotype",
    "GenotypeError",
    "Network",
    "NetworkConfig",
    "UnknownModelError",
    "build_baseline",
    "build_network",
    "choices",
    "count_cost",
    "count_mult_adds",
    "count_params",
    "genotype_from_params",
    "get_arch",
    "get_model",
    "list_models",
    "params_from_genotype",
    "register_model",
    "sample_genotype",
]
