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
    except click.exceptions.Abort:
        click.echo("error: interrupted", err=True)
        return 1
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
