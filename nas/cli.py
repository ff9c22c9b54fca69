"""The `nas` command: a thin layer over functions in this package that tests call directly.

Exit codes: 0 success, 2 bad input (one line on stderr, never a traceback), 1 anything else.
Every command imports what it needs inside its body: `nas --help`, `nas status` and
`nas leaderboard` load neither torch nor ray.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from nas.errors import MAX_SEED, BadInput, InputError, by_sigterm
from search_spaces.errors import DISTRIBUTION

console = Console(stderr=False)

LAYOUT = click.Choice(["cifar", "imagenet"])
PATH = click.Path(path_type=Path)
DEFAULT_STORAGE = "sqlite:///nas.db"


def print_json(data: Any) -> None:
    """The one JSON document a `--json` command prints on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


def wide_console() -> Console:
    """A pipe gets a wide table rather than one squeezed into 80 columns."""
    return console if console.is_terminal else Console(width=180)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=DISTRIBUTION)
def cli() -> None:
    """Neural architecture search: NASNet cells, Optuna controller, Ray workers, SQL results."""


# -- options: each written once, shared by every command that takes it ----------------------

OPTIONS: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "storage": click.option(
        "--storage", envvar="NAS_STORAGE", default=DEFAULT_STORAGE, show_default=True,
        show_envvar=True, help="Database URL."),
    "json": click.option("--json", "as_json", is_flag=True, help="Print one JSON document."),
    "layout": click.option("--layout", type=LAYOUT, default="cifar", show_default=True),
    "cifar-layout": click.option("--layout", type=click.Choice(["cifar"]), default="cifar",
                                 show_default=True),
    "cells": click.option("--cells", type=int, help="N: normal cells per stack (cell networks)."),
    "filters": click.option("--filters", type=int, help="F: channels of the penultimate layer."),
    "width": click.option("--width", type=float, help="Width multiplier (baselines)."),
    "stem-stride": click.option("--stem-stride", type=int, help="Stride of a cell network's "
                                "CIFAR stem: 1 (the paper) or 2 (the cells at 16x16)."),
    "image-size": click.option("--image-size", type=int, help="Input side in pixels."),
    "classes": click.option("--classes", "num_classes", type=int, help="Number of classes."),
    "epochs": click.option("--epochs", type=int, help="Training epochs (overrides the preset)."),
    "batch-size": click.option("--batch-size", type=int,
                               help="Images per step (overrides the preset)."),
    "subset": click.option("--subset", type=int, help="Train on this many training images."),
    "max-steps": click.option("--max-steps", type=int,
                              help="Stop after this many optimizer steps."),
    "time-budget": click.option(
        "--time-budget", type=float,
        help="Seconds of training; the schedule follows the clock, --epochs is a cap."),
    "lr-grid": click.option(
        "--lr-grid", help="Comma-separated peak learning rates: each gets a short run on the "
        "45,000 training images scored on the 5,000 validation images, the best one trains "
        "(default: the preset's grid; one value: that lr, no short runs)."),
    "seed": click.option("--seed", type=click.IntRange(0, MAX_SEED),
                         help="Seed for initialisation, order and augmentation."),
    "data": click.option("--data", type=PATH, default=None,
                         help="CIFAR-10 directory (default: env NAS_DATA_DIR)."),
    "out": click.option("--out", type=click.Path(file_okay=False, path_type=Path),
                        default=Path("runs"), show_default=True,
                        help="Directory for the checkpoints."),
    "ray-address": click.option("--ray-address",
                                help="Join this Ray cluster (default: start a local one)."),
    "workers": click.option("--workers", type=int, help="K: Ray Train workers (DDP processes)."),
    "gpus-per-worker": click.option("--gpus-per-worker", type=float,
                                    help="G: GPUs per worker (0: CPU, gloo)."),
    "study": click.option("--study", help="Study name (default: the most recent)."),
}
SIZE = ("layout", "cells", "filters", "image-size", "classes", "width")


def options(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Apply the shared options `names` (shown in that order by --help)."""

    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for name in reversed(names):
            func = OPTIONS[name](func)
        return func

    return apply


def given(values: dict[str, Any]) -> dict[str, Any]:
    """The options the user set (None means "the preset decides")."""
    return {k: v for k, v in values.items() if v is not None}


def resolve(ref: str, storage: str) -> Any:
    """REF -> Arch; imports torch, so only commands that build a network call it."""
    from nas.refs import resolve_ref

    return resolve_ref(ref, storage)


@cli.command("list")
@click.option("--presets", "presets", is_flag=True,
              help="List the training presets (both layouts) instead, with their cost.")
@options("json")
def list_cmd(presets: bool, as_json: bool) -> None:
    """Registered architectures: published genotypes and hand-designed baselines."""
    if presets:
        _list_presets(as_json)
        return
    from search_spaces import list_models

    rows = [{"name": arch.name, "kind": arch.kind} for arch in list_models()]
    if as_json:
        print_json(rows)
        return
    table = Table("name", "kind")
    for row in rows:
        table.add_row(row["name"], row["kind"])
    console.print(table)


def _list_presets(as_json: bool) -> None:
    """`nas list --presets`: the one recipe registry, and which command uses what by default."""
    from workers.presets import preset_rows

    rows = preset_rows()
    if as_json:
        print_json(rows)
        return
    table = Table("preset", "layout", "N@F", "px", "budget", "default for", "what, and its cost")
    for r in rows:
        size = f"{r['cells']}@{r['filters']}" if r["cells"] else "-"
        budget = (f"{r['time_budget']:g} s (at most {r['epochs']} epochs)"
                  if r["time_budget"] else f"{r['epochs']} epochs")
        table.add_row(r["name"], r["layout"], size, str(r["image_size"]), budget,
                      ", ".join(r["default_for"]) or "-", r["description"])
    wide_console().print(table)


@cli.command()
@click.argument("ref")
@options(*SIZE, "storage", "json")
def inspect(ref: str, storage: str, as_json: bool, **size: Any) -> None:
    """Build REF's network and count its parameters and mult-adds."""
    from nas.inspect import inspect_arch

    result = inspect_arch(resolve(ref, storage), **size)
    if as_json:
        print_json(result)
        return
    table = Table("field", "value", show_header=False)
    for key, value in result.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)


@cli.command()
@click.argument("ref")
@click.option("--diagram", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a drawing of both cells (.png or .svg).")
@options("storage", "json")
def show(ref: str, diagram: Path | None, storage: str, as_json: bool) -> None:
    """Show REF's genotype, its cost, and (with --diagram) a drawing of both cells."""
    from nas.inspect import genotype_table, inspect_arch

    arch = resolve(ref, storage)
    if arch.genotype is None:
        raise BadInput(f"{ref} is a baseline, not a cell genotype; try `nas inspect {ref}`")
    if diagram is not None:
        from nas.results.diagram import draw_genotype

        draw_genotype(arch.genotype, diagram, title=arch.name)
    if as_json:
        print_json(arch.genotype.to_dict())
        return
    for table in genotype_table(arch.genotype):
        console.print(table)
    cost = inspect_arch(arch)
    console.print(
        f"key {arch.genotype.key()}  ·  CIFAR {cost['cells']}@{cost['filters']}"
        f"{' (stem stride 2)' if cost['stem_stride'] == 2 else ''}: "
        f"{cost['params']:,} params, {cost['mult_adds']:,} mult-adds"
    )
    if diagram is not None:
        console.print(f"diagram written to {diagram}")


@cli.command("export")
@click.argument("ref")
@click.option("--out", required=True, type=PATH,
              help="Directory to write <name>.py, genotype.json and the rest into.")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path),
              help="Checkpoint from nas train/transfer; its description sizes the network.")
@options(*SIZE)
@click.option("--onnx", is_flag=True, help="Also write <name>.onnx (dynamic batch size).")
@click.option("--force", is_flag=True, help="Write into a non-empty --out directory.")
@options("storage", "json")
def export_cmd(ref: str, out: Path, weights: Path | None, layout: str | None, onnx: bool,
               force: bool, storage: str, as_json: bool, **size: Any) -> None:
    """Write REF as a stand-alone module that needs only torch, plus weights and ONNX."""
    from nas.results.export import run_export

    if click.get_current_context().get_parameter_source("layout").name == "DEFAULT":
        layout = None  # unset: the checkpoint (or the cifar default) decides
    result = run_export(ref, out, storage=storage, weights=weights, onnx=onnx, force=force,
                        layout=layout, **size)
    if as_json:
        print_json(result)
        return
    for key in ("module", "weights", "genotype", "onnx"):
        if result[key]:
            console.print(f"wrote {result[key]}")
    console.print(f"{result['params']:,} params; module matches nas's network "
                  f"(max abs diff {result['max_abs_diff']:.2g})")


@cli.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML/JSON file with the same keys as these options.")
@click.option("--preset", help="Training preset (default: cpu-search, gpu-nasnet with GPUs).")
@click.option("--study", help="Study name: letters, digits, _ . - (default: search).")
@click.option("--trials", type=int, help="Run until the study holds N finished trials.")
@click.option("--timeout", type=float, help="Start no trial after T seconds; on the clock a "
              "running trial stops at the last rung it can reach by then (cpu-search: 900; "
              "--timeout 2700 is the full 45-minute search).")
@click.option("--sampler", help="tpe (default), random, nsga2, evolution.")
@click.option("--population", type=int, help="Evolution: population size P.")
@click.option("--tournament", type=int, help="Evolution: tournament size S.")
@click.option("--objectives", help="val_accuracy[,params|mult_adds|latency].")
@click.option("--pruner", help="none, median, sha (successive halving, ASHA), hyperband "
              "(default: sha on the clock, median otherwise).")
@click.option("--budget-seconds", type=float, help="Train each candidate for T seconds (at most "
              "604800) and rank by validation accuracy then (default: the preset's, 180 for "
              "cpu-search).")
@click.option("--rung-seconds", type=int, help="First successive-halving rung in seconds of "
              "training (1..budget; cpu-search: 10).")
@click.option("--reduction-factor", type=int, help="Successive halving: keep 1 in ETA at each "
              "rung, rungs r, r*ETA, ... up to the budget (2..100; default 3).")
@click.option("--max-params", type=int, help="Prune candidates with more parameters.")
@click.option("--max-mult-adds", type=int, help="Prune candidates with more mult-adds.")
@click.option("--cells-choices", help="Searched N (normal cells per stack), e.g. 1,2.")
@click.option("--filters-choices", help="Searched F (filters), e.g. 24,32,48,64,96.")
@click.option("--stem-stride-choices",
              help="Searched stride of the CIFAR stem, e.g. 1,2 (2: cells at 16x16 pixels).")
@click.option("--blocks-choices",
              help="Searched B, blocks per cell (1..5; the paper: 5), e.g. 1,2,3,4,5.")
@click.option("--min-rung-images", type=int,
              help="Prune, before training, candidates estimated to train fewer images in the "
                   "first rung.")
@click.option("--gpus-per-trial", type=float, help="GPUs per trial (fractions allowed).")
@click.option("--cpus-per-trial", type=float, help="CPUs per trial (default 1).")
@options("ray-address")
@click.option("--seed", type=click.IntRange(0, MAX_SEED),
              help="Study seed; trial seeds derive from it.")
@click.option("--data", help="CIFAR-10 directory (default: env NAS_DATA_DIR).")
@click.option("--resume", is_flag=True, help="Continue an existing study.")
@options("storage", "json")
def search(config_file: Path | None, resume: bool, storage: str, as_json: bool,
           **flags: Any) -> None:
    """Search the NASNet cell space until the study holds N finished trials."""
    from nas.search.config import make_config, read_config_file
    from nas.search.driver import run_search

    flags = given(flags)
    config = make_config(config_file, **flags)
    explicit = set(flags) | (set(read_config_file(config_file)) if config_file else set())
    summary = run_search(config, storage, resume=resume, explicit=explicit, live=not as_json)
    if as_json:
        print_json(summary.to_dict())
        return
    best = summary.best
    console.print(f"study {summary.study}: {summary.trials} finished trials "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(summary.states.items()))}) "
                  f"in {summary.elapsed_s:.0f}s")
    if best is not None:
        console.print(f"best: trial {best['trial']}, val accuracy {best['val_accuracy']:.4f}, "
                      f"{best['params']:,} params, {best['mult_adds']:,} mult-adds  "
                      f"(`nas show {summary.study}:best`)")


def _open_for_reading(storage: str) -> Any:
    from nas.db import DatabaseError, open_database

    try:
        return open_database(storage, create=False)
    except DatabaseError as exc:
        raise BadInput(str(exc)) from None


def _pick_search(db: Any, study: str | None) -> Any:
    """The named study, or the most recent one when none is named."""
    if study is not None:
        found = db.search(study)
        if found is None:
            names = ", ".join(s.name for s in db.searches()) or "none yet"
            raise BadInput(f"no study {study!r} in {db.display_url} (studies: {names})")
        return found
    searches = db.searches()
    if not searches:
        raise BadInput(f"no studies in {db.display_url}; run `nas search` first")
    return searches[0]


@cli.command()
@options("study", "storage", "json")
def status(study: str | None, storage: str, as_json: bool) -> None:
    """Trials by state, best so far, elapsed time, and whether a driver is running it."""
    from nas.db import STATES, lock_holder
    from nas.search.config import objective_text

    db = _open_for_reading(storage)
    try:
        found = _pick_search(db, study)
        counts = db.state_counts(found.search_id)
        best = db.best_trial(found.search_id)
        trials = db.trials(found.search_id)
    finally:
        db.close()
    ends = [t.finished_at for t in trials if t.finished_at is not None]
    last = max(ends) if ends else found.updated_at
    result = {
        "study": found.name,
        "states": {state: counts.get(state, 0) for state in STATES} | counts,
        "finished": counts.get("COMPLETE", 0) + counts.get("PRUNED", 0),
        "best_val_accuracy": best.val_accuracy if best else None,
        "best_trial": best.number if best else None,
        "elapsed_s": round((last - found.created_at).total_seconds(), 1),
        "status": found.status,
        "driver": lock_holder(found),
        "preset": found.config.get("preset"),
        "sampler": found.config.get("sampler"),
        "objective": objective_text(found.config),
        "budget_seconds": found.config.get("budget_seconds"),
        "seed": found.seed,
        "package_version": found.package_version,
        "data_fingerprint": found.data_fingerprint,
    }
    if as_json:
        print_json(result)
        return
    table = Table("field", "value", show_header=False, title=f"study {found.name}")
    for key, value in result.items():
        if key == "states":
            value = ", ".join(f"{k} {v}" for k, v in value.items() if v)
        table.add_row(key, "-" if value is None else str(value))
    console.print(table)


@cli.command()
@options("study")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True)
@options("storage", "json")
def leaderboard(study: str | None, top: int, storage: str, as_json: bool) -> None:
    """Best finished trials: COMPLETE by validation accuracy, then PRUNED."""
    db = _open_for_reading(storage)
    try:
        found = _pick_search(db, study)
        trials = db.trials(found.search_id, ["COMPLETE", "PRUNED"])
    finally:
        db.close()
    trials.sort(key=lambda t: (t.state != "COMPLETE", -(t.val_accuracy or 0.0), t.number))
    rows = [
        {
            "trial": t.number, "state": t.state, "val_accuracy": t.val_accuracy,
            "params": t.params, "mult_adds": t.mult_adds, "epochs": t.epochs,
            "cells": t.cells, "filters": t.filters, "stem_stride": t.stem_stride,
            "est_images_per_s": t.est_images_per_s,
            "duration_s": None if t.duration_s is None else round(t.duration_s, 2),
            "key": t.key, "genotype": t.genotype, "duplicate_of": t.duplicate_of,
            "note": t.error,
        }
        for t in trials[:top]
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("trial", "state", "val acc", "N@F", "params", "mult-adds", "epochs",
                  "seconds", "key", "note", title=f"study {found.name}")
    for r in rows:
        note = f"duplicate of {r['duplicate_of']}" if r["duplicate_of"] is not None else (
            (r["note"] or "").split("\n", 1)[0])  # the summary; --json has the traceback
        table.add_row(
            str(r["trial"]), r["state"],
            "-" if r["val_accuracy"] is None else f"{r['val_accuracy']:.4f}",
            "-" if r["cells"] is None else (f"{r['cells']}@{r['filters']}"
                                            + (" s2" if r["stem_stride"] == 2 else "")),
            f"{r['params']:,}" if r["params"] is not None else "-",
            f"{r['mult_adds']:,}" if r["mult_adds"] is not None else "-",
            str(r["epochs"]), "-" if r["duration_s"] is None else f"{r['duration_s']:.1f}",
            (r["key"] or "-")[:8], note,
        )
    console.print(table)


@cli.command("wait-db")
@options("storage")
@click.option("--attempts", type=click.IntRange(min=1), default=10, show_default=True,
              envvar="NAS_DB_WAIT_ATTEMPTS", help="Connection attempts before giving up.")
@click.option("--delay", type=click.FloatRange(min=0), default=1.0, show_default=True,
              envvar="NAS_DB_WAIT_DELAY", help="First wait in seconds; doubles, at most 30.")
def wait_db(storage: str, attempts: int, delay: float) -> None:
    """Wait until the database accepts connections (containers start in any order).

    Exit 0 once it does, 2 for a wrong URL, user, password or database, 1 when the attempts
    run out (DatabaseUnavailable, naming the URL without its password and the last error).
    """
    from nas.db.wait import wait_for_database

    wait_for_database(storage, attempts, delay, log=lambda line: click.echo(line, err=True))


def _print_epoch(item: dict[str, Any]) -> None:
    """Per-epoch progress of a Ray Train run, on stderr so `--json` stdout stays clean."""
    parts = [f"epoch {item['epoch']}", f"loss {item['train_loss']:.3f}",
             f"{item['images_per_s']:.0f} img/s", f"{item['seconds']:.0f}s"]
    if "top5" in item:
        parts.insert(2, f"top-5 {100 * item['top5']:.1f}%")
    if "top1" in item:
        parts.insert(2, f"top-1 {100 * item['top1']:.1f}%")
    click.echo("  ".join(parts), err=True)


@cli.command("transfer")
@click.argument("ref")
@click.option("--data", type=PATH,
              help="ImageFolder with train/<class>/* and val/<class>/* (e.g. Imagenette).")
@click.option("--preset", help="Transfer preset (default: cpu-transfer, gpu-mobile with a GPU).")
@options("cells", "filters", "image-size", "width", "epochs")
@click.option("--batch-size", type=int, help="Global batch size, split over the workers.")
@click.option("--max-train-images", type=int, help="Train on a class-balanced subset.")
@options("workers", "gpus-per-worker", "seed", "out", "ray-address", "storage", "json")
def transfer_cmd(ref: str, data: Path | None, out: Path, ray_address: str | None,
                 storage: str, as_json: bool, **flags: Any) -> None:
    """Train REF at the ImageNet layout with Ray Train on DATA/train, score top-1/5 on val."""
    from nas.training.transfer import transfer

    row = transfer(ref, data, storage, out=out, ray_address=ray_address,
                   on_epoch=_print_epoch, **given(flags))
    if as_json:
        print_json(row)
        return
    console.print(
        f"{row['arch']} ({row['preset']}, {row['image_size']}px): top-1 {100 * row['top1']:.2f}%"
        f", top-5 {100 * row['top5']:.2f}%, {row['params']:,} params, "
        f"{row['mult_adds']:,} mult-adds, {row['train_seconds']:.0f}s training on "
        f"{len(row['workers'] or [])} worker(s); checkpoint {row['checkpoint']}")


@cli.command("baselines")
@options("layout")
@click.option("--arch", "archs", help="Comma-separated baselines, or all (default: the eight "
              "of the comparison: lenet5 … mobilenet-v2).")
@click.option("--preset", help="The budget every model gets (CIFAR: a training preset such as "
              "cpu-compare (the default without a GPU); ImageNet: a transfer preset such as "
              "cpu-transfer).")
@options("epochs")
@click.option("--width-rule", help="preset, full, a width W, max-mult-adds=M or match=REF: one "
              "rule for every baseline.")
@options("subset", "max-steps", "time-budget", "lr-grid", "seed")
@click.option("--data", type=PATH,
              help="CIFAR-10 directory (default: env NAS_DATA_DIR) or, for --layout imagenet, "
                   "an ImageFolder with train/ and val/.")
@options("workers", "gpus-per-worker", "out", "storage", "json")
def baselines_cmd(layout: str, archs: str | None, width_rule: str | None, out: Path,
                  storage: str, as_json: bool, **flags: Any) -> None:
    """Train hand-designed baselines under the budget a chosen model gets; record each."""
    from nas.training.baselines import run_baselines

    def done(row: dict[str, Any]) -> None:
        accuracy = row.get("test_accuracy", row.get("top1"))
        click.echo(f"{row['arch']} (width {row['width']:g}): accuracy {100 * accuracy:.2f}%, "
                   f"{row['params']:,} params, {row['mult_adds']:,} mult-adds, "
                   f"{row['train_seconds']:.0f}s", err=True)

    rows, rule = run_baselines(layout, archs, width_rule, storage, out=out, on_model=done,
                               on_epoch=_print_epoch, **given(flags))
    if as_json:
        print_json(rows)
        return
    from nas.results.compare import render_table

    wide_console().print(render_table([
        {"arch": r["arch"], "kind": "baseline", "layout": layout, "preset": r.get("preset"),
         "params": r["params"], "mult_adds": r["mult_adds"],
         "accuracy": r.get("test_accuracy", r.get("top1")), "top5": r.get("top5"),
         "epochs": r.get("epochs"), "train_seconds": r.get("train_seconds"),
         "images_per_s": r.get("images_per_s"), "lr": r.get("lr"),
         "lr_pick": r.get("lr_pick")} for r in rows]))
    console.print(rule)


@cli.command("compare")
@click.option("--study",
              help="Only this study's searched cells (custom, published and baselines stay).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Write accuracy vs mult-adds (.png, .svg or .pdf).")
@click.option("--all", "show_all", is_flag=True,
              help="Every model row, not only the newest per arch, layout and preset.")
@options("storage", "json")
def compare_cmd(study: str | None, plot: Path | None, show_all: bool, storage: str,
                as_json: bool) -> None:
    """Searched cells vs published genotypes vs baselines: one table, and a plot."""
    from nas.results.compare import compare_rows, plot_compare, render_table

    rows = compare_rows(storage, study=study, show_all=show_all)
    if plot is not None:
        plot_compare(rows, plot)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no trained models yet: run `nas train`, `nas baselines` or `nas transfer`")
        return
    wide_console().print(render_table(rows))
    if plot is not None:
        console.print(f"plot written to {plot}")


@cli.command("train")
@click.argument("ref")
@click.option("--preset", help="Training preset (default: cpu-final, gpu-final with a GPU; "
              "`nas list --presets`).")
@options("cifar-layout", "cells", "filters", "stem-stride", "epochs", "batch-size", "subset",
         "max-steps", "time-budget", "lr-grid", "seed")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the checkpoint (default: ./checkpoints).")
@options("data", "storage", "json")
def train_cmd(ref: str, storage: str, as_json: bool, **flags: Any) -> None:
    """Train REF on CIFAR-10 (50,000 images), score on the test split, write a checkpoint."""
    from nas.training.train import print_train_result, run_with_progress

    row = run_with_progress(ref, storage, console, show=not as_json, **flags)
    if as_json:
        print_json(row)
        return
    print_train_result(row, console)


@cli.group("bench")
def bench() -> None:
    """Measure this machine: training throughput."""


@bench.command("train")
@click.argument("ref")
@click.option("--preset", help="Training preset (default: cpu-quick, gpu-nasnet with a GPU).")
@options("cifar-layout", "cells", "filters")
@click.option("--batch-size", type=int, help="Images per step (default: the preset's).")
@click.option("--steps", type=int, default=5, show_default=True, help="Steps per repeat.")
@click.option("--repeats", type=int, default=5, show_default=True, help="Repeats (median).")
@options("data", "storage", "json")
def bench_train(ref: str, storage: str, as_json: bool, **flags: Any) -> None:
    """Images/s of the whole training step and of the model alone (median of repeats)."""
    from nas.training.train import run_bench

    row = run_bench(ref, storage=storage, **flags)
    if as_json:
        print_json(row)
        return
    console.print(
        f"{row['arch']} ({row['preset']}, batch {row['batch_size']}, {row['device']}, "
        f"{row['threads']} threads, channels_last={row['channels_last']}, bf16={row['bf16']}): "
        f"whole step {row['images_per_s']:.1f} img/s, model only "
        f"{row['model_only_images_per_s']:.1f} img/s, ratio {row['ratio']:.3f}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map errors onto exit codes with one-line messages.

    Every bad-input error of the libraries derives from `InputError`, so this is the one
    place that turns them into exit code 2.
    """
    try:
        cli.main(args=argv, prog_name="nas", standalone_mode=False)
    except InputError as exc:
        click.echo(f"error: {_scrubbed(exc)}", err=True)
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:  # usage errors: unknown option, bad value
        click.echo(f"error: {exc.format_message()} (see `nas {_command(argv)}--help`)", err=True)
        return 2
    except click.exceptions.Abort as exc:  # click's wrapping of Ctrl-C (or of EOF at a prompt)
        if isinstance(exc.__cause__, KeyboardInterrupt):
            return _interrupted(exc.__cause__)
        click.echo("error: interrupted", err=True)
        return 1
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except Exception as exc:
        if os.environ.get("NAS_DEBUG"):
            raise
        click.echo(f"error: {type(exc).__name__}: {_scrubbed(exc)} (set NAS_DEBUG=1 for a "
                   "traceback)", err=True)
        return 1
    return 0


def _scrubbed(exc: BaseException) -> str:
    """An error's text with every storage password seen in this process hidden (an Optuna or
    driver message may quote a URL); imported only when there is an error to print."""
    from nas.db.urls import scrub

    return scrub(str(exc))


def _interrupted(exc: KeyboardInterrupt) -> int:
    """Ctrl-C is exit 130 and SIGTERM 143 (128 + the signal), as shells report them."""
    if by_sigterm(exc):
        click.echo("error: interrupted (SIGTERM)", err=True)
        return 143
    click.echo("error: interrupted", err=True)
    return 130


def _command(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    words = [a for a in args[:2] if not a.startswith("-")]
    return f"{words[0]} " if words else ""


def entry() -> None:
    sys.exit(main())


@cli.command("monitor")
@click.option("--temp-dir", type=PATH, default=Path("/tmp/ray"), show_default=True,
              help="The Ray head's temp dir (`ray start --temp-dir`).")
@click.option("--write-config", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a prometheus.yml scraping every node (else use Ray's own).")
@click.option("--scrape-interval", type=click.FloatRange(min=0.5), default=10.0,
              show_default=True, help="Seconds between scrapes, for --write-config.")
@options("json")
def monitor_cmd(temp_dir: Path, write_config: Path | None, scrape_interval: float,
                as_json: bool) -> None:
    """Where Prometheus finds this Ray head's metrics, and the command that scrapes them."""
    from nas.search.monitor import prometheus_files, scrape_targets, write_prometheus_config

    session = temp_dir / "session_latest"
    if not session.is_dir():
        raise BadInput(f"no Ray session under {temp_dir}: start `nas search` or `ray start "
                       "--head` on this machine first, or pass the head's --temp-dir")
    config, _ = prometheus_files(session)
    if not config.is_file():
        raise BadInput(f"{config} does not exist: this machine's Ray node is not the head (or "
                       "runs without its dashboard); run `nas monitor` on the head")
    # Ray keeps this link pointed at the current session's file: it survives a restart.
    discovery = temp_dir / "prom_metrics_service_discovery.json"
    if write_config is not None:
        write_prometheus_config(write_config, discovery, scrape_interval)
        config = write_config
    result = {"temp_dir": str(temp_dir), "session": str(session.resolve()),
              "config": str(config), "discovery": str(discovery),
              "targets": scrape_targets(discovery),
              "command": f"prometheus --config.file={config}"}
    if as_json:
        print_json(result)
        return
    click.echo(f"session:        {result['session']}")
    click.echo(f"scrape targets: {', '.join(result['targets']) or 'none listed yet'}")
    click.echo(f"config:         {config}")
    click.echo(f"run:            {result['command']}")


@cli.command("report")
@options("study", "storage")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The .html file to write (one self-contained page).")
def report_cmd(study: str | None, storage: str, out: Path) -> None:
    """One HTML page about a study: settings, best-so-far curve, leaderboard with its cells
    drawn, trials by state, and the trained models compared."""
    from nas.results.report import write_report

    db = _open_for_reading(storage)
    try:
        found = _pick_search(db, study)
        write_report(db, found, out, storage)
    finally:
        db.close()
    console.print(f"report on study {found.name} written to {out}", soft_wrap=True)
