"""The foundation: ops, genotypes, the builder, the registry and cost against the paper."""

from __future__ import annotations

import json
import random

import pytest
import torch

from search_spaces import (
    OPS,
    PUBLISHED,
    SEARCHABLE_OPS,
    Arch,
    Block,
    Cell,
    ConfigError,
    Genotype,
    GenotypeError,
    NetworkConfig,
    build_network,
    choices,
    count_cost,
    genotype_from_params,
    get_arch,
    list_models,
    params_from_genotype,
    register_model,
    sample_genotype,
)
from search_spaces.baselines import BASELINES

NASNET = PUBLISHED["nasnet-a"]


def meta_cost(arch: Arch, **size: object) -> tuple[int, int]:
    settings = arch.resolve(**size)
    with torch.device("meta"):
        cost = count_cost(arch.build(**settings), settings["image_size"])
    return cost.params, cost.mult_adds


# --- operations ---------------------------------------------------------------------------


def test_thirteen_searchable_ops() -> None:
    assert len(SEARCHABLE_OPS) == 13 and len(set(SEARCHABLE_OPS)) == 13
    assert set(SEARCHABLE_OPS) < set(OPS)


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_keeps_channels_and_scales_resolution(name: str, stride: int) -> None:
    torch.manual_seed(0)
    op = OPS[name](8, stride, True)
    y = op(torch.randn(2, 8, 16, 16))
    assert y.shape == (2, 8, 16 // stride, 16 // stride)
    assert torch.isfinite(y).all()


# --- genotypes ----------------------------------------------------------------------------


def test_published_cells_match_design() -> None:
    normal, reduce = NASNET.normal, NASNET.reduce
    assert normal.blocks[0] == Block((1, 0), ("sep_conv_5x5", "sep_conv_3x3"), "add")
    assert normal.output_states() == (0, 2, 3, 4, 5, 6)
    assert reduce.blocks[3] == Block((3, 2), ("identity", "avg_pool_3x3"), "add")
    assert reduce.output_states() == (3, 4, 5, 6)
    assert set(PUBLISHED) == {"nasnet-a", "amoebanet-a", "darts-v2"}


def test_json_round_trip_and_key() -> None:
    for genotype in PUBLISHED.values():
        again = Genotype.from_json(genotype.to_json())
        assert again == genotype and again.key() == genotype.key()
    assert len({g.key() for g in PUBLISHED.values()}) == 3


def test_key_ignores_branch_order_only() -> None:
    blocks = list(NASNET.normal.blocks)
    b = blocks[0]
    blocks[0] = Block((b.inputs[1], b.inputs[0]), (b.ops[1], b.ops[0]), b.combine)
    swapped = Genotype(Cell(tuple(blocks), NASNET.normal.concat), NASNET.reduce)
    assert swapped != NASNET and swapped.key() == NASNET.key()
    blocks[0] = Block(b.inputs, (b.ops[1], b.ops[0]), b.combine)  # ops swapped, inputs not
    different = Genotype(Cell(tuple(blocks), NASNET.normal.concat), NASNET.reduce)
    assert different.key() != NASNET.key()


def _mutated(**cell_changes: object) -> dict:
    data = NASNET.to_dict()
    for path, value in cell_changes.items():
        cell, field, *rest = path.split("__")
        if field == "blocks":
            index, key = int(rest[0]), rest[1]
            data[cell]["blocks"][index][key] = value
        else:
            data[cell][field] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_mutated(normal__blocks__0__ops=["sep_9x9", "identity"]), "unknown op 'sep_9x9'"),
        (_mutated(normal__blocks__1__inputs=[3, 0]), "block 1: input index 3 is out of range"),
        (_mutated(reduce__blocks__0__inputs=[-1, 0]), "input index -1 is out of range"),
        (_mutated(reduce__concat=[2, 9]), "names state 9, which does not exist"),
        (_mutated(normal__blocks__2__combine="mul"), "unknown combine 'mul'"),
        (_mutated(normal__blocks__0__inputs=[1]), "'inputs' must be a list of 2"),
        ({"normal": {"blocks": []}, "reduce": {"blocks": []}}, "normal cell has no blocks"),
        ({"normal": NASNET.to_dict()["normal"]}, "missing the 'reduce' cell"),
        ([1, 2, 3], "must be a JSON object"),
        ({**NASNET.to_dict(), "extra": 1}, "unknown genotype keys"),
    ],
)
def test_validate_names_the_problem(data: object, message: str) -> None:
    with pytest.raises(GenotypeError, match=message.replace("(", r"\(")):
        Genotype.from_dict(data)


def test_wrong_number_of_blocks_for_the_space() -> None:
    with pytest.raises(GenotypeError, match="has 4 blocks; this search space needs 5"):
        PUBLISHED["darts-v2"].validate(num_blocks=5)


def test_reduction_output_may_not_name_an_input() -> None:
    bad = Genotype(NASNET.normal, Cell(NASNET.reduce.blocks, (1, 3, 4)))
    bad.validate()
    with pytest.raises(GenotypeError, match="not reduced"):
        build_network(bad, NetworkConfig(cells=1, filters=48))


def test_malformed_json_text() -> None:
    with pytest.raises(GenotypeError, match="not valid JSON"):
        Genotype.from_json("{not json")
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(GenotypeError):
        Genotype.from_json(deep)


# --- the space ----------------------------------------------------------------------------


def test_space_has_fifty_decisions_and_round_trips() -> None:
    space = choices()
    assert len(space) == 50
    genotype = sample_genotype(random.Random(1))
    assert genotype_from_params(params_from_genotype(genotype)) == genotype


def check_random_genotypes(count: int, seed: int) -> None:
    """Sample, validate, JSON round-trip with an unchanged key, build and run on meta."""
    rng = random.Random(seed)
    config = NetworkConfig(cells=1, filters=24)
    keys = set()
    for _ in range(count):
        genotype = sample_genotype(rng)
        genotype.validate(num_blocks=5)
        again = Genotype.from_json(json.dumps(genotype.to_dict()))
        assert again == genotype and again.key() == genotype.key()
        with torch.device("meta"):
            net = build_network(genotype, config)
            assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
        keys.add(genotype.key())
    assert len(keys) == count


def test_random_genotypes_validate_build_and_round_trip() -> None:
    check_random_genotypes(50, seed=1)


@pytest.mark.slow
def test_thousand_random_genotypes_validate_build_and_round_trip() -> None:
    check_random_genotypes(1000, seed=2018)


def test_random_genotypes_run_for_real() -> None:
    rng = random.Random(7)
    for _ in range(5):
        net = build_network(sample_genotype(rng), NetworkConfig(cells=1, filters=24))
        y = net(torch.randn(2, 3, 32, 32))
        assert y.shape == (2, 10) and torch.isfinite(y).all()


# --- the builder --------------------------------------------------------------------------


def test_drop_path_and_auxiliary_head() -> None:
    torch.manual_seed(0)
    config = NetworkConfig(cells=1, filters=48, auxiliary=True, drop_path=0.3)
    net = build_network(NASNET, config)
    net.train()
    net.set_progress(0.5)
    assert net.drop_path_prob == pytest.approx(0.15)
    y = net(torch.randn(4, 3, 32, 32))
    assert y.shape == (4, 10) and net.aux_logits is not None and net.aux_logits.shape == (4, 10)
    (y.sum() + net.aux_logits.sum()).backward()
    net.eval()
    a, b = net(torch.ones(2, 3, 32, 32)), net(torch.ones(2, 3, 32, 32))
    assert torch.equal(a, b)  # no drop-path at evaluation
    with_aux, without = count_cost(net, 32), count_cost(build_network(NASNET, NetworkConfig(
        cells=1, filters=48)), 32)
    assert with_aux == without  # the auxiliary head is excluded from cost


def test_concat_blocks_build() -> None:
    blocks = tuple(Block((0, 1), ("conv_3x3", "max_pool_5x5"), "concat") for _ in range(5))
    genotype = Genotype(Cell(blocks), Cell(blocks)).validate(5)
    net = build_network(genotype, NetworkConfig(cells=1, filters=48))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("layout", ["cifar", "imagenet"])
def test_zero_normal_cells_leave_the_reduction_cells(layout: str) -> None:
    """N = 0 is the skeleton without normal cells: CIFAR keeps its two reductions, the
    ImageNet layout its two stem reductions too; no normal cell is built."""
    size = 32 if layout == "cifar" else 64
    net = build_network(NASNET, NetworkConfig(layout, cells=0, filters=96, image_size=size))
    assert all(cell.reduction for cell in net.cells)
    assert len(net.cells) == (2 if layout == "cifar" else 4)
    assert net(torch.randn(2, 3, size, size)).shape == (2, 10)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (NetworkConfig(cells=-1), "--cells must be at least 0"),
        (NetworkConfig("imagenet", image_size=7), "--image-size 7 is too small"),
        (NetworkConfig(filters=3), "--filters must be at least 24"),
    ],
)
def test_config_errors(config: NetworkConfig, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_network(NASNET, config)


# --- reference figures (DESIGN §3) ---------------------------------------------------------


def test_nasnet_mobile_matches_the_paper() -> None:
    params, mult_adds = meta_cost(get_arch("nasnet-a"), layout="imagenet", cells=4,
                                  filters=1056, image_size=224, num_classes=1000)
    assert abs(params / 5.3e6 - 1) < 0.02
    assert abs(mult_adds / 564e6 - 1) < 0.03


def test_nasnet_large_matches_timm_and_the_paper() -> None:
    params, mult_adds = meta_cost(get_arch("nasnet-a"), layout="imagenet", cells=6,
                                  filters=4032, image_size=331, num_classes=1000)
    assert abs(params / 88_753_150 - 1) < 0.005
    assert abs(mult_adds / 23.8e9 - 1) < 0.02


def test_nasnet_cifar_matches_the_paper() -> None:
    params, _ = meta_cost(get_arch("nasnet-a"), layout="cifar", cells=6, filters=768)
    assert abs(params / 3.3e6 - 1) < 0.05


BASELINE_PARAMS = {
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "googlenet": 6_624_904,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "inception-resnet-v2": 55_843_464,
    "mobilenet-v1": 4_231_976,
    "mobilenet-v2": 3_504_872,
}


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_have_the_published_parameter_count(name: str) -> None:
    params, _ = meta_cost(get_arch(name), layout="imagenet")
    if name == "lenet5":  # 61,706 for the 1-channel MNIST original; ours reads RGB
        assert abs(params / 61_706 - 1) < 0.02
    else:
        assert params == BASELINE_PARAMS[name]


def test_baseline_mult_adds() -> None:
    assert abs(meta_cost(get_arch("resnet50"), layout="imagenet")[1] / 4.09e9 - 1) < 0.01
    assert abs(meta_cost(get_arch("mobilenet-v1"), layout="imagenet")[1] / 569e6 - 1) < 0.01


# --- the registry: every architecture at both layouts -------------------------------------

IMAGENET_TEST_SIZE = 96  # small enough to run every network on 2 CPU cores, big enough for all


@pytest.mark.parametrize("name", [arch.name for arch in list_models()])
@pytest.mark.parametrize("layout", ["cifar", "imagenet"])
def test_every_registered_architecture_builds_and_runs(name: str, layout: str) -> None:
    torch.manual_seed(0)
    arch = get_arch(name)
    size: dict[str, object] = {"layout": layout}
    if arch.kind == "genotype":
        size.update(cells=1, filters=48)
    if layout == "imagenet":
        size.update(image_size=32 if name == "lenet5" else IMAGENET_TEST_SIZE)
    settings = arch.resolve(**size)
    model = arch.build(**settings).eval()
    s = settings["image_size"]
    with torch.no_grad():
        y = model(torch.randn(2, 3, s, s))
    assert y.shape == (2, settings["num_classes"])
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize("width", [0.5, 0.25])
def test_width_multiplier_applies_to_every_baseline(name: str, width: float) -> None:
    arch = get_arch(name)
    full = arch.build(layout="cifar")
    thin = arch.build(layout="cifar", width=width)
    thin.train()
    y = thin(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    n_full = sum(p.numel() for p in full.parameters())
    n_thin = sum(p.numel() for p in thin.parameters())
    assert n_thin < n_full * (width * 1.3)  # roughly width^2 of the weights


def test_cell_sizes_do_not_apply_to_baselines() -> None:
    with pytest.raises(ConfigError, match="baseline"):
        get_arch("resnet18").resolve(cells=2)


def test_registering_a_name_twice_raises() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model(Arch("nasnet-a", "genotype", NASNET))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_genotypes_are_valid(name: str) -> None:
    """PUBLISHED is not validated at import (that would load torch for `nas list`)."""
    assert PUBLISHED[name].validate() is PUBLISHED[name]
