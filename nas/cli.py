"""The `nas` command: a thin layer over functions in this package that tests call directly.

Exit codes: 0 success, 2 bad input (one line on stderr, never a traceback), 1 anything else.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from nas.errors import BadInput
from nas.refs import resolve_ref
from search_spaces import ConfigError, GenotypeError, UnknownModelError, list_models

console = Console(stderr=False)

LAYOUT = click.Choice(["cifar", "imagenet"])


def default_storage() -> str:
    """`--storage` default: env NAS_STORAGE, else an SQLite file in the working directory."""
    return os.environ.get("NAS_STORAGE") or "sqlite:///nas.db"


def print_json(data: Any) -> None:
    """The one JSON document a `--json` command prints on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


def bad_input_on(*errors: type[Exception]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn library validation errors into BadInput so the CLI exits 2 with one line."""

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except errors as exc:
                raise BadInput(str(exc)) from None

        return inner

    return wrap


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nas")
def cli() -> None:
    """Neural architecture search: NASNet cells, Optuna controller, Ray workers, SQL results."""


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(func)


def size_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options that size a network, shared by inspect, export and friends."""
    for option in reversed(
        [
            click.option("--layout", type=LAYOUT, default="cifar", show_default=True),
            click.option("--cells", type=int, help="N: normal cells per stack."),
            click.option("--filters", type=int, help="F: channels of the penultimate layer."),
            click.option("--image-size", type=int, help="Input side in pixels."),
            click.option("--classes", "num_classes", type=int, help="Number of classes."),
            click.option("--width", type=float, help="Width multiplier (baselines)."),
        ]
    ):
        func = option(func)
    return func


@cli.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """Registered architectures: published genotypes and hand-designed baselines."""
    rows = [{"name": arch.name, "kind": arch.kind} for arch in list_models()]
    if as_json:
        print_json(rows)
        return
    table = Table("name", "kind")
    for row in rows:
        table.add_row(row["name"], row["kind"])
    console.print(table)


@cli.command()
@click.argument("ref")
@size_options
@click.option("--storage", default=None, help="Database URL (for STUDY:N refs).")
@json_option
@bad_input_on(ConfigError, GenotypeError, UnknownModelError)
def inspect(ref: str, storage: str | None, as_json: bool, **size: Any) -> None:
    """Build REF's network and count its parameters and mult-adds."""
    from nas.inspect import inspect_arch

    arch = resolve_ref(ref, storage or default_storage())
    result = inspect_arch(arch, **size)
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
@click.option("--storage", default=None, help="Database URL (for STUDY:N refs).")
@json_option
@bad_input_on(ConfigError, GenotypeError, UnknownModelError)
def show(ref: str, diagram: Path | None, storage: str | None, as_json: bool) -> None:
    """Show REF's genotype, its cost, and (with --diagram) a drawing of both cells."""
    from nas.inspect import genotype_table, inspect_arch

    arch = resolve_ref(ref, storage or default_storage())
    if arch.genotype is None:
        raise BadInput(f"{ref} is a baseline, not a cell genotype; try `nas inspect {ref}`")
    if diagram is not None:
        from nas.diagram import draw_genotype

        draw_genotype(arch.genotype, diagram, title=arch.name)
    if as_json:
        print_json(arch.genotype.to_dict())
        return
    for table in genotype_table(arch.genotype):
        console.print(table)
    cost = inspect_arch(arch)
    console.print(
        f"key {arch.genotype.key()}  ·  CIFAR {cost['cells']}@{cost['filters']}: "
        f"{cost['params']:,} params, {cost['mult_adds']:,} mult-adds"
    )
    if diagram is not None:
        console.print(f"diagram written to {diagram}")


@cli.command("export")
@click.argument("ref")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Directory to write <name>.py, genotype.json and the rest into.")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path),
              help="Checkpoint from nas train/transfer; its description sizes the network.")
@size_options
@click.option("--onnx", is_flag=True, help="Also write <name>.onnx (dynamic batch size).")
@click.option("--force", is_flag=True, help="Write into a non-empty --out directory.")
@click.option("--storage", default=None, help="Database URL (for STUDY:N refs).")
@json_option
@bad_input_on(ConfigError, GenotypeError, UnknownModelError)
def export_cmd(ref: str, out: Path, weights: Path | None, layout: str | None, onnx: bool,
               force: bool, storage: str | None, as_json: bool, **size: Any) -> None:
    """Write REF as a stand-alone module that needs only torch, plus weights and ONNX."""
    from nas.export import run_export

    if click.get_current_context().get_parameter_source("layout").name == "DEFAULT":
        layout = None  # unset: the checkpoint (or the cifar default) decides
    result = run_export(ref, out, storage=storage or default_storage(), weights=weights,
                        onnx=onnx, force=force, layout=layout, **size)
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
@click.option("--preset", help="Training preset (default: cpu-quick, gpu-nasnet with GPUs).")
@click.option("--study", help="Study name: letters, digits, _ . - (default: search).")
@click.option("--trials", type=int, help="Run until the study holds N finished trials.")
@click.option("--timeout", type=float, help="Stop starting trials after T seconds.")
@click.option("--sampler", help="tpe (default), random, nsga2, evolution.")
@click.option("--population", type=int, help="Evolution: population size P.")
@click.option("--tournament", type=int, help="Evolution: tournament size S.")
@click.option("--objectives", help="val_accuracy[,params|mult_adds|latency].")
@click.option("--pruner", help="none, median (default), hyperband.")
@click.option("--max-params", type=int, help="Prune candidates with more parameters.")
@click.option("--max-mult-adds", type=int, help="Prune candidates with more mult-adds.")
@click.option("--gpus-per-trial", type=float, help="GPUs per trial (fractions allowed).")
@click.option("--cpus-per-trial", type=float, help="CPUs per trial (default 1).")
@click.option("--ray-address", help="Join this Ray cluster (default: start a local one).")
@click.option("--seed", type=int, help="Study seed; trial seeds derive from it.")
@click.option("--data", help="CIFAR-10 directory (default: env NAS_DATA_DIR).")
@click.option("--resume", is_flag=True, help="Continue an existing study.")
@click.option("--storage", default=None, help="Database URL (default: env NAS_STORAGE).")
@json_option
def search(config_file: Path | None, resume: bool, storage: str | None, as_json: bool,
           **flags: Any) -> None:
    """Search the NASNet cell space until the study holds N finished trials."""
    from nas.config import make_config
    from nas.search import run_search

    given = {k: v for k, v in flags.items() if v is not None}
    config = make_config(config_file, **given)
    explicit = set(given)
    if config_file is not None:
        from nas.config import read_config_file

        explicit |= set(read_config_file(config_file))
    summary = run_search(config, storage or default_storage(), resume=resume, explicit=explicit)
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


def _open_for_reading(storage: str | None) -> Any:
    from nas.db import DatabaseError, open_database

    try:
        return open_database(storage or default_storage(), create=False)
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
@click.option("--study", help="Study name (default: the most recent).")
@click.option("--storage", default=None, help="Database URL (default: env NAS_STORAGE).")
@json_option
def status(study: str | None, storage: str | None, as_json: bool) -> None:
    """Trials by state, best so far, elapsed time, and whether a driver is running it."""
    from nas.db import STATES
    from nas.search import lock_holder

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
@click.option("--study", help="Study name (default: the most recent).")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--storage", default=None, help="Database URL (default: env NAS_STORAGE).")
@json_option
def leaderboard(study: str | None, top: int, storage: str | None, as_json: bool) -> None:
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
            "duration_s": None if t.duration_s is None else round(t.duration_s, 2),
            "key": t.key, "genotype": t.genotype, "duplicate_of": t.duplicate_of,
            "note": t.error,
        }
        for t in trials[:top]
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("trial", "state", "val acc", "params", "mult-adds", "epochs", "seconds",
                  "key", "note", title=f"study {found.name}")
    for r in rows:
        note = f"duplicate of {r['duplicate_of']}" if r["duplicate_of"] is not None else (
            (r["note"] or "").split("\n", 1)[0])  # the summary; --json has the traceback
        table.add_row(
            str(r["trial"]), r["state"],
            "-" if r["val_accuracy"] is None else f"{r['val_accuracy']:.4f}",
            f"{r['params']:,}" if r["params"] is not None else "-",
            f"{r['mult_adds']:,}" if r["mult_adds"] is not None else "-",
            str(r["epochs"]), "-" if r["duration_s"] is None else f"{r['duration_s']:.1f}",
            (r["key"] or "-")[:8], note,
        )
    console.print(table)


@cli.command("wait-db")
@click.option("--storage", default=None, help="Database URL (default: env NAS_STORAGE).")
@click.option("--attempts", type=click.IntRange(min=1), default=10, show_default=True,
              envvar="NAS_DB_WAIT_ATTEMPTS", help="Connection attempts before giving up.")
@click.option("--delay", type=click.FloatRange(min=0), default=1.0, show_default=True,
              envvar="NAS_DB_WAIT_DELAY", help="First wait in seconds; doubles, at most 30.")
def wait_db(storage: str | None, attempts: int, delay: float) -> None:
    """Wait until the database accepts connections (containers start in any order).

    Exit 0 once it does, 2 for a wrong URL, user, password or database, 1 when the attempts
    run out (DatabaseUnavailable, naming the URL without its password and the last error).
    """
    from nas.wait import wait_for_database

    wait_for_database(storage or default_storage(), attempts, delay,
                      log=lambda line: click.echo(line, err=True))


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
@click.option("--data", type=click.Path(path_type=Path),
              help="ImageFolder with train/<class>/* and val/<class>/* (e.g. Imagenette).")
@click.option("--preset", help="Transfer preset (default: cpu-transfer, gpu-mobile with a GPU).")
@click.option("--cells", type=int, help="N: normal cells per stack (cell networks).")
@click.option("--filters", type=int, help="F: channels of the penultimate layer.")
@click.option("--image-size", type=int, help="Input side in pixels (ImageNet layout: >= 32).")
@click.option("--width", type=float, help="Width multiplier (baselines).")
@click.option("--epochs", type=int, help="Training epochs (overrides the preset).")
@click.option("--batch-size", type=int, help="Global batch size, split over the workers.")
@click.option("--max-train-images", type=int, help="Train on a class-balanced subset.")
@click.option("--workers", type=int, help="K: Ray Train workers (DDP processes).")
@click.option("--gpus-per-worker", type=float, help="G: GPUs per worker (0: CPU, gloo).")
@click.option("--seed", type=int, help="Seed for initialisation, order and augmentation.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="Directory for the checkpoint.")
@click.option("--ray-address", help="Join this Ray cluster (default: start a local one).")
@click.option("--storage", default=None, help="Database URL (default: env NAS_STORAGE).")
@json_option
@bad_input_on(ConfigError, GenotypeError, UnknownModelError)
def transfer_cmd(ref: str, data: Path | None, out: Path, ray_address: str | None,
                 storage: str | None, as_json: bool, **options: Any) -> None:
    """Train REF at the ImageNet layout with Ray Train on DATA/train, score top-1/5 on val."""
    from nas.transfer import transfer

    row = transfer(ref, data, storage or default_storage(), out=out, ray_address=ray_address,
                   on_epoch=_print_epoch, **{k: v for k, v in options.items() if v is not None})
    if as_json:
        print_json(row)
        return
    console.print(
        f"{row['arch']} ({row['preset']}, {row['image_size']}px): top-1 {100 * row['top1']:.2f}%"
        f", top-5 {100 * row['top5']:.2f}%, {row['params']:,} params, "
        f"{row['mult_adds']:,} mult-adds, {row['train_seconds']:.0f}s training on "
        f"{len(row['workers'] or [])} worker(s); checkpoint {row['checkpoint']}")


@cli.command("baselines")
@click.option("--layout", type=LAYOUT, default="cifar", show_default=True)
@click.option("--arch", "archs", help="Comma-separated baselines, or all (default: the eight "
              "of the comparison: lenet5 … mobilenet-v2).")
@click.option("--preset", help="The budget every model gets (CIFAR: a training preset such as "
              "cpu-compare (the default without a GPU); ImageNet: a transfer preset such as "
              "cpu-transfer).")
@click.option("--epochs", type=int, help="Training epochs (overrides the preset).")
@click.option("--width-rule", help="preset, full, a width W, max-mult-adds=M or match=REF: one "
              "rule for every baseline.")
@click.option("--subset", type=int, help="CIFAR: train on this many images.")
@click.option("--max-steps", type=int, help="CIFAR: stop after this many optimizer steps.")
@click.option("--time-budget", type=float, help="CIFAR: seconds of training for every model.")
@click.option("--seed", type=int, help="The same seed for every model.")
@click.option("--data", type=click.Path(path_type=Path),
              help="CIFAR-10 directory (default: env NAS_DATA_DIR) or, for --layout imagenet, "
                   "an ImageFolder with train/ and val/.")
@click.option("--workers", type=int, help="ImageNet layout: Ray Train workers.")
@click.option("--gpus-per-worker", type=float, help="ImageNet layout: GPUs per worker.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="Directory for the checkpoints.")
@click.option("--storage", default=None, help="Database URL (default: env NAS_STORAGE).")
@json_option
@bad_input_on(ConfigError, GenotypeError, UnknownModelError)
def baselines_cmd(layout: str, archs: str | None, width_rule: str | None, out: Path,
                  storage: str | None, as_json: bool, **options: Any) -> None:
    """Train hand-designed baselines under the budget a chosen model gets; record each."""
    from nas.baselines_cmd import run_baselines

    def done(row: dict[str, Any]) -> None:
        accuracy = row.get("test_accuracy", row.get("top1"))
        click.echo(f"{row['arch']} (width {row['width']:g}): accuracy {100 * accuracy:.2f}%, "
                   f"{row['params']:,} params, {row['mult_adds']:,} mult-adds, "
                   f"{row['train_seconds']:.0f}s", err=True)

    rows, rule = run_baselines(layout, archs, width_rule, storage or default_storage(),
                               out=out, on_model=done, on_epoch=_print_epoch,
                               **{k: v for k, v in options.items() if v is not None})
    if as_json:
        print_json(rows)
        return
    from nas.compare import render_table

    wide = console if console.is_terminal else Console(width=180)
    wide.print(render_table([
        {"arch": r["arch"], "kind": "baseline", "layout": layout, "preset": r.get("preset"),
         "params": r["params"], "mult_adds": r["mult_adds"],
         "accuracy": r.get("test_accuracy", r.get("top1")), "top5": r.get("top5"),
         "epochs": r.get("epochs"), "train_seconds": r.get("train_seconds"),
         "images_per_s": r.get("images_per_s")} for r in rows]))
    console.print(rule)


@cli.command("compare")
@click.option("--study", help="Only this study's searched cells (published and baselines stay).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Write accuracy vs mult-adds (.png, .svg or .pdf).")
@click.option("--all", "show_all", is_flag=True,
              help="Every model row, not only the newest per arch, layout and preset.")
@click.option("--storage", default=None, help="Database URL (default: env NAS_STORAGE).")
@json_option
def compare_cmd(study: str | None, plot: Path | None, show_all: bool, storage: str | None,
                as_json: bool) -> None:
    """Searched cells vs published genotypes vs baselines: one table, and a plot."""
    from nas.compare import compare_rows, plot_compare, render_table

    rows = compare_rows(storage or default_storage(), study=study, show_all=show_all)
    if plot is not None:
        plot_compare(rows, plot)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no trained models yet: run `nas train`, `nas baselines` or `nas transfer`")
        return
    # a pipe gets a wide table rather than one squeezed into 80 columns
    wide = console if console.is_terminal else Console(width=180)
    wide.print(render_table(rows))
    if plot is not None:
        console.print(f"plot written to {plot}")


@cli.command("train")
@click.argument("ref")
@click.option("--preset", default="cpu-final", show_default=True,
              help="Training preset: cpu-quick, cpu-compare, cpu-final, gpu-nasnet, "
                   "gpu-final.")
@click.option("--layout", type=click.Choice(["cifar"]), default="cifar", show_default=True)
@click.option("--cells", type=int, help="N: normal cells per stack (cell networks).")
@click.option("--filters", type=int, help="F: channels of the penultimate layer.")
@click.option("--epochs", type=int, help="Training epochs (overrides the preset).")
@click.option("--batch-size", type=int, help="Images per step (overrides the preset).")
@click.option("--subset", type=int, help="Train on this many of the training images.")
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option("--time-budget", type=float,
              help="Seconds of training; the schedule follows the clock, --epochs is a cap.")
@click.option("--seed", type=int, help="Seed for initialisation, order and augmentation.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the checkpoint (default: ./checkpoints).")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="CIFAR-10 directory (default: env NAS_DATA_DIR).")
@click.option("--storage", default=None, help="Database URL (for STUDY:N refs).")
@json_option
@bad_input_on(ConfigError, GenotypeError, UnknownModelError)
def train_cmd(ref: str, storage: str | None, as_json: bool, **options: Any) -> None:
    """Train REF on CIFAR-10 (50,000 images), score on the test split, write a checkpoint."""
    from nas.train_cmd import print_train_result, run_with_progress

    row = run_with_progress(ref, storage or default_storage(), console, show=not as_json,
                            **options)
    if as_json:
        print_json(row)
        return
    print_train_result(row, console)


@cli.group("bench")
def bench() -> None:
    """Measure this machine: training throughput."""


@bench.command("train")
@click.argument("ref")
@click.option("--preset", default="cpu-quick", show_default=True, help="Training preset.")
@click.option("--layout", type=click.Choice(["cifar"]), default="cifar", show_default=True)
@click.option("--cells", type=int, help="N: normal cells per stack (cell networks).")
@click.option("--filters", type=int, help="F: channels of the penultimate layer.")
@click.option("--batch-size", type=int, help="Images per step (default: the preset's).")
@click.option("--steps", type=int, default=5, show_default=True, help="Steps per repeat.")
@click.option("--repeats", type=int, default=5, show_default=True, help="Repeats (median).")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="CIFAR-10 directory (default: env NAS_DATA_DIR).")
@click.option("--storage", default=None, help="Database URL (for STUDY:N refs).")
@json_option
@bad_input_on(ConfigError, GenotypeError, UnknownModelError)
def bench_train(ref: str, storage: str | None, as_json: bool, **options: Any) -> None:
    """Images/s of the whole training step and of the model alone (median of repeats)."""
    from nas.train_cmd import run_bench

    row = run_bench(ref, storage=storage or default_storage(), **options)
    if as_json:
        print_json(row)
        return
    console.print(
        f"{row['arch']} ({row['preset']}, batch {row['batch_size']}, {row['device']}, "
        f"{row['threads']} threads, channels_last={row['channels_last']}, bf16={row['bf16']}): "
        f"whole step {row['images_per_s']:.1f} img/s, model only "
        f"{row['model_only_images_per_s']:.1f} img/s, ratio {row['ratio']:.3f}")

def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map errors onto exit codes with one-line messages."""
    try:
        cli.main(args=argv, prog_name="nas", standalone_mode=False)
    except BadInput as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:  # usage errors: unknown option, bad value
        click.echo(f"error: {exc.format_message()} (see `nas {_command(argv)}--help`)", err=True)
        return 2
    except click.exceptions.Abort as exc:
        click.echo("error: interrupted", err=True)
        return 130 if isinstance(exc.__cause__, KeyboardInterrupt) else 1
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        return 130
    except Exception as exc:
        if os.environ.get("NAS_DEBUG"):
            raise
        click.echo(f"error: {type(exc).__name__}: {exc} (set NAS_DEBUG=1 for a traceback)",
                   err=True)
        return 1
    return 0


def _command(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    words = [a for a in args[:2] if not a.startswith("-")]
    return f"{words[0]} " if words else ""


def entry() -> None:
    sys.exit(main())
