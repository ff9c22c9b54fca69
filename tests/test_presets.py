"""One recipe registry: both layouts' presets listed together, and one rule for the preset
each command uses when none is given (workers.presets.DEFAULT_PRESETS)."""

from __future__ import annotations

import json

import pytest

from nas.cli import main
from workers.presets import (
    DEFAULT_PRESETS,
    PRESETS,
    TRANSFER_PRESETS,
    default_preset,
    get_preset,
    get_transfer_preset,
)


@pytest.mark.parametrize("command", sorted(DEFAULT_PRESETS))
@pytest.mark.parametrize("has_gpu", [False, True])
def test_every_default_is_a_preset_of_the_right_layout(command: str, has_gpu: bool) -> None:
    name = default_preset(command, has_gpu)
    lookup = get_transfer_preset if command == "transfer" else get_preset
    assert lookup(name).name == name
    assert name.startswith("gpu-" if has_gpu else "cpu-")


def test_the_rule_without_a_gpu() -> None:
    assert [default_preset(c, False) for c in ("search", "train", "bench", "baselines",
                                               "transfer")] == [
        "cpu-search", "cpu-final", "cpu-quick", "cpu-compare", "cpu-transfer"]


def test_list_presets_shows_both_layouts_with_their_defaults(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--presets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(PRESETS) | set(TRANSFER_PRESETS)
    by_name = {r["name"]: r for r in rows}
    assert by_name["cpu-transfer"]["layout"] == "imagenet"
    assert by_name["cpu-compare"]["time_budget"] == 180.0
    assert "search (cpu)" in by_name["cpu-search"]["default_for"]
    assert all(r["description"] for r in rows)
    assert main(["list", "--presets"]) == 0
    assert "cpu-final" in capsys.readouterr().out


def test_an_unknown_preset_names_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "train", "nasnet-a", "--preset", "cpu-warp"]) == 2
    err = capsys.readouterr().err
    assert "cpu-warp" in err and "cpu-quick" in err and err.count("\n") == 1


def test_cpu_search_caps_candidates_at_nasnet_a_at_the_comparison_size() -> None:
    """The searched network may not cost more than NASNet-A at cpu-compare's N@F: the cap
    cpu-search stores with each study is that cost, recounted here."""
    from nas.search.controller import network_cost
    from search_spaces import PUBLISHED
    from workers.presets import NASNET_A_COMPARE_MULT_ADDS, PRESETS

    network = {"layout": "cifar", "image_size": 32, "num_classes": 10,
               **PRESETS["cpu-compare"].network}
    cost = network_cost(PUBLISHED["nasnet-a"], network)
    assert cost.mult_adds == NASNET_A_COMPARE_MULT_ADDS
    assert PRESETS["cpu-search"].max_mult_adds == NASNET_A_COMPARE_MULT_ADDS
