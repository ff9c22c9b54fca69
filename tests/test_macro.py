"""N, F, the stem stride and B (blocks per cell) as searched decisions, and the throughput
pre-filter (issue 14 items 3 and 4).

Real searches on real CIFAR-10 subsets, tiny networks, a few steps; the pre-filter's
estimates come from a real latency table measured on this machine.
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
from faults.faultkit import run_bad_input
from test_search import run_cli, tiny

from nas.db import open_database
from nas.search.driver import run_search
from search_spaces import PUBLISHED
from search_spaces.space import params_from_genotype, sample_genotype
from workers.throughput import LatencyTable

MACRO = {"cells_choices": (1, 2), "filters_choices": (24, 32), "stem_stride_choices": (1, 2),
         "blocks_choices": (1, 2), "network": {}}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cells-choices", ""], "--cells-choices: give at least one value"),
        (["--filters-choices", ","], "--filters-choices: give at least one value"),
        (["--cells-choices", "-1,1"], "--cells-choices (config key cells_choices): -1 is refused"),
        (["--filters-choices", "16,32"], "--filters-choices (config key filters_choices): 16"),
        (["--cells-choices", "1,two"], "cells_choices.1"),
        (["--filters-choices", "24.5"], "filters_choices.0"),
        (["--min-rung-images", "0"], "--min-rung-images"),
        (["--stem-stride-choices", "1,3"],
         "--stem-stride-choices (config key stem_stride_choices): 3 is refused"),
        (["--stem-stride-choices", ""], "--stem-stride-choices: give at least one value"),
        (["--blocks-choices", "0,2"],
         "--blocks-choices (config key blocks_choices): 0 is refused: a cell has 1 to 5"),
        (["--blocks-choices", "2,6"], "--blocks-choices (config key blocks_choices): 6 is"),
        (["--blocks-choices", "2,x"], "blocks_choices.1"),
    ],
)
def test_bad_macro_choices_exit_2_and_write_nothing(
    args: list[str], message: str, tmp_path: Path, cifar_dir: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    run_bad_input(["search", "--preset", "cpu-quick", *args], message, tmp_path, cifar_dir,
                  monkeypatch, capsys)


def test_bad_macro_config_key(tmp_path: Path, cifar_dir: Path,
                              monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "search.yaml"
    config.write_text("filters_choices: []\ncells_choices: [1, 2]\n")
    run_bad_input(["search", "--config", str(config)], "filters_choices: give at least one",
                  tmp_path, cifar_dir, monkeypatch, capsys)
    config.write_text("cells_choices: [1, 40]\n")
    run_bad_input(["search", "--config", str(config)], "cells_choices): 40 is refused",
                  tmp_path, cifar_dir, monkeypatch, capsys)


def test_macro_decisions_round_trip(
    ray_cluster: None, cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """N, F, the stem stride and B are Optuna decisions, stored with the trial (B as the
    genotype's cells of B blocks), and what show/train/export build; the same cell at another
    N@F is another candidate, at the same N@F a duplicate."""
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    summary = run_search(tiny("m", cifar_dir, trials=3, sampler="random", **MACRO), url)
    assert summary.states == {"COMPLETE": 3}
    db = open_database(url)
    search_id = db.search("m").search_id
    trials = db.trials(search_id)
    study = optuna.load_study(study_name="m", storage=db.url)
    for t, frozen in zip(trials, study.trials, strict=True):
        assert (t.cells, t.filters, t.stem_stride) == (
            frozen.params["cells"], frozen.params["filters"], frozen.params["stem_stride"])
        assert t.cells in (1, 2) and t.filters in (24, 32)
        for cell in ("normal", "reduce"):
            assert len(t.genotype[cell]["blocks"]) == frozen.params["blocks"]
    assert {t.stem_stride for t in trials} == {1, 2}  # seed 0 draws both

    code, out, _ = run_cli("leaderboard", "--study", "m", "--storage", url, "--json",
                           capsys=capsys)
    rows = {r["trial"]: r for r in json.loads(out)}
    assert code == 0 and all(
        (rows[t.number]["cells"], rows[t.number]["filters"], rows[t.number]["stem_stride"]) ==
        (t.cells, t.filters, t.stem_stride) for t in trials)

    t = next(t for t in trials if t.stem_stride == 2)
    ref = f"m:{t.number}"
    code, out, _ = run_cli("show", ref, "--storage", url, capsys=capsys)
    assert code == 0 and f"CIFAR {t.cells}@{t.filters} (stem stride 2):" in out
    labels = re.findall(r"^│ (b\d) ", out, re.MULTILINE)  # each cell's block column
    assert labels == [f"b{k}" for k in range(len(t.genotype["normal"]["blocks"]))] * 2
    code, out, _ = run_cli("inspect", ref, "--storage", url, "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["params"] == t.params  # the trial's own network
    code, out, err = run_cli(
        "train", ref, "--storage", url, "--preset", "cpu-quick", "--epochs", "1",
        "--subset", "64", "--max-steps", "1", "--data", str(cifar_dir),
        "--out", str(tmp_path / "ck"), "--json", capsys=capsys)
    assert code == 0, err
    model = db.models()[0]
    built = model.card["architecture"]
    assert (built["cells"], built["filters"], built["settings"]["stem_stride"]) == (
        t.cells, t.filters, 2)
    code, out, _ = run_cli("export", ref, "--storage", url, "--out", str(tmp_path / "ex"),
                           "--json", capsys=capsys)
    exported = json.loads(out)
    assert code == 0 and exported["params"] == t.params and exported["stem_stride"] == 2
    other = 2 if t.cells == 1 else 1  # an explicit --cells still wins
    code, out, _ = run_cli("inspect", ref, "--storage", url, "--cells", str(other), "--json",
                           capsys=capsys)
    assert code == 0 and json.loads(out)["cells"] == other

    # Dedupe identity is the cell at its N@F: trial 0's cell at its size is a duplicate, the
    # same cell at the other F is trained.
    first = study.trials[0]
    study.enqueue_trial(dict(first.params))
    resized = {**first.params, "filters": 56 - first.params["filters"]}
    study.enqueue_trial(resized)
    run_search(tiny("m", cifar_dir, trials=5, **MACRO), url, resume=True, explicit={"trials"})
    same, moved = db.trial(search_id, 3), db.trial(search_id, 4)
    assert same.duplicate_of == first.number and same.epochs == 0
    assert moved.duplicate_of is None and moved.epochs == 1
    assert moved.key == same.key and moved.filters == resized["filters"]
    db.close()


def test_blocks_decision_keeps_the_first_b_blocks() -> None:
    """B = 2 keeps each cell's first two blocks of the 50 decisions; the genotype of B
    blocks round-trips through `params_from_genotype`; B outside 1..5 is refused."""
    from search_spaces import Genotype, genotype_from_params

    full = params_from_genotype(sample_genotype(random.Random(3)))
    five = genotype_from_params(full)
    two = genotype_from_params({**full, "blocks": 2})
    assert two.normal.blocks == five.normal.blocks[:2]
    assert two.reduce.blocks == five.reduce.blocks[:2]
    assert genotype_from_params(params_from_genotype(two)) == two
    assert Genotype.from_dict(two.to_dict()) == two and two.key() != five.key()
    for bad in (0, 6):
        with pytest.raises(ValueError, match="blocks must be one of"):
            genotype_from_params({**full, "blocks": bad})


def test_a_cell_input_no_block_reads_gets_no_projection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A one-block cell that reads only h_i builds no 1x1 for h_{i-1}: fewer parameters and
    mult-adds than the same cell reading both, the same logits shape, and an export whose
    module (checked against the project's network inside `nas export`) has the same size."""
    import torch

    from nas.refs import resolve_ref
    from search_spaces import count_cost

    def one_block(inputs: list[int]) -> dict[str, Any]:
        block = {"inputs": inputs, "ops": ["conv_3x3", "identity"], "combine": "add"}
        return {"blocks": [block], "concat": None}

    sizes = {}
    for name, inputs in (("h_i", [1, 1]), ("both", [1, 0])):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"normal": one_block(inputs), "reduce": one_block(inputs)}))
        net = resolve_ref(str(path)).build(cells=1, filters=48)
        assert all((cell.pre0 is None) == (name == "h_i") for cell in net.cells)
        assert all(cell.pre1 is not None for cell in net.cells)
        assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
        sizes[name] = count_cost(net, 32)
    assert sizes["h_i"].params < sizes["both"].params
    assert sizes["h_i"].mult_adds < sizes["both"].mult_adds
    code, out, err = run_cli("export", str(tmp_path / "h_i.json"), "--cells", "1", "--filters",
                             "48", "--out", str(tmp_path / "ex"), "--json", capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["params"] == sizes["h_i"].params


def test_stem_stride_quarters_the_cells_pixels() -> None:
    """Stride 2 runs every cell at 16x16: about a quarter of the mult-adds, the same
    parameters, logits of the right shape; other strides and the imagenet layout refuse."""
    from nas.inspect import inspect_arch
    from search_spaces import ConfigError, get_arch

    arch = get_arch("nasnet-a")
    paper = inspect_arch(arch, cells=1, filters=96)
    quartered = inspect_arch(arch, cells=1, filters=96, stem_stride=2)
    assert quartered["params"] == paper["params"]
    assert 0.2 < quartered["mult_adds"] / paper["mult_adds"] < 0.3
    model = arch.build(cells=1, filters=24, stem_stride=2)
    import torch

    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    for bad, message in (({"stem_stride": 3}, "stem stride must be 1 or 2"),
                         ({"stem_stride": 2, "layout": "imagenet"}, "cifar layout only"),
                         ({"stem_stride": 2, "image_size": 8}, "use at least 16")):
        with pytest.raises(ConfigError, match=message):
            arch.resolve(**bad)


def test_latency_table_is_measured_once_and_reused(tmp_path: Path) -> None:
    genotype = PUBLISHED["nasnet-a"]
    network = {"cells": 1, "filters": 24}
    table = LatencyTable(threads=1, cache_dir=tmp_path)
    first = table.estimate(genotype, network, batch_size=16)
    assert first.measured > 0 and first.images_per_s > 0 and table.path.is_file()
    again = LatencyTable(threads=1, cache_dir=tmp_path).estimate(genotype, network, 16)
    assert again.measured == 0 and again.images_per_s == first.images_per_s
    other = LatencyTable(threads=2, cache_dir=tmp_path)  # another thread count: its own table
    assert other.path != table.path and other.entries == {}
    table.path.write_text("{not json")  # a damaged cache is measured again, not trusted
    assert LatencyTable(threads=1, cache_dir=tmp_path).estimate(genotype, network,
                                                                16).measured > 0


def test_throughput_prefilter_prunes_a_slow_candidate_before_training(
    ray_cluster: None, cifar_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A heavy candidate whose estimate falls short of the rung's images is PRUNED with the
    reason and never trained; a light one passes and trains, its estimate stored beside its
    measured img/s."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    genotype = sample_genotype(random.Random(0))
    table = LatencyTable(threads=1, channels_last=True)  # what cpu-quick's trials use
    light = table.estimate(genotype, {"cells": 1, "filters": 24}, 64).images_per_s
    heavy = table.estimate(genotype, {"cells": 2, "filters": 96}, 64).images_per_s
    assert heavy < light
    rung = 2  # --rung-seconds: the first rung of a search on the clock
    floor = int(math.sqrt(light * heavy) * rung)  # between the two; cached, so no noise
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    config = tiny("pf", cifar_dir, trials=2, cells_choices=(1, 2), filters_choices=(24, 96),
                  network={}, min_rung_images=floor, budget_seconds=4, rung_seconds=rung)
    study = optuna.create_study(study_name="pf", storage=url, direction="maximize")
    cell = params_from_genotype(genotype)
    study.enqueue_trial({**cell, "cells": 2, "filters": 96})  # heavy first, then light
    study.enqueue_trial({**cell, "cells": 1, "filters": 24})
    run_search(config, url, resume=True)  # the Optuna study exists, our search not yet
    db = open_database(url)
    slow, fast = db.trials(db.search("pf").search_id)
    assert slow.state == "PRUNED" and slow.epochs == 0
    assert slow.error.startswith(f"estimated {heavy:,.0f} img/s: ")
    assert f"in the 2 s rung, below the {floor:,} cpu-quick asks" in slow.error
    assert slow.est_images_per_s == pytest.approx(heavy)
    assert fast.state == "COMPLETE" and fast.est_images_per_s == pytest.approx(light)
    assert db.epochs(db.search("pf").search_id, fast.number)[0].images_per_s > 0
    db.close()
