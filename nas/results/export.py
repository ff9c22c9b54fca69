"""`nas export`: a cell network as a stand-alone Python module that needs only torch.

What gets written into the output directory, and why it looks the way it does:

- `<name>.py` is rendered from `nas/results/_export_template.py.txt`: readable source with the
  genotype written in as data (`GENOTYPE`, a dict of tuples) and one generic cell class, not
  cells unrolled into code. It states its input: `MEAN`, `STD` (0..255 scale), `IMAGE_SIZE`,
  `CLASSES` (from the checkpoint's model card; without weights, the layout's training
  normalization) and `preprocess(images)` for uint8 or [0, 1] float images. Its
  state-dict keys are exactly those of `search_spaces.Network`, so one safetensors file
  loads into both.
- `nas_ops.py`: `search_spaces/ops.py` copied unchanged (it imports only torch), so the op
  catalogue exists once and the export runs the project's own op definitions.
- `<name>.safetensors` (with `--weights`): the checkpoint's tensors minus the auxiliary
  head, which is training-only (its parameters are excluded from every cost count too),
  with the checkpoint's model card in its metadata.
  The exported module reads it with a small torch-only safetensors reader, so loading never
  unpickles anything and needs no package besides torch.
- `genotype.json`: the genotype, as `nas show --json` prints it (a REF for every command).
- `<name>.onnx` (with `--onnx`): dynamic batch size, checked against torch with
  onnxruntime at batch 1 and 3. It is written with torch's TorchScript exporter: on 2 CPU
  cores it takes about 2 s where the torch.export-based exporter takes about 10 s, and
  onnxruntime checks the result either way; `exporter="dynamo"` selects the other one.
- Baselines are not exported: they are torchvision/timm constructor calls, so the
  checkpoint's weights plus that call are already a stand-alone model.

Every export is checked before anything lands in the output directory: the generated module
is imported, loaded with the same weights and compared with the project's own network.
Before any of that, the output directory, the network's size (counted on the meta device,
against the caps and this machine's memory) and the weights (no NaN or Inf) are checked.
The whole export is staged in a temporary directory beside the output directory and
swapped in (the old directory renamed aside, the new one renamed in, the old one removed),
so a failed export leaves nothing behind and `--force` leaves no file of an earlier export
beside a module it does not describe. `--force` replaces only a directory that holds an
earlier export's files (`*.py`, `*.safetensors`, `*.onnx`, `genotype.json`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import keyword
import os
import re
import shlex
import shutil
import sys
import tempfile
import textwrap
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import torch
from torch import nn

import search_spaces.ops
from nas.errors import BadInput
from nas.inspect import inspect_arch, meta_cost, state_name
from nas.preflight import check_memory, check_out_dir, check_storage_url, out_problem
from nas.refs import resolve_ref
from search_spaces import Arch, ConfigError, Genotype, GenotypeError, count_params, package_version
from search_spaces.genotype import Cell
from workers.card import ModelCard, layout_normalization
from workers.checkpoint import CheckpointError, load_checkpoint, save_state

TEMPLATE = Path(__file__).with_name("_export_template.py.txt")
AUX_PREFIX = "aux_head."  # the auxiliary head's keys in `Network.state_dict()`
TOLERANCE = 1e-5  # exported module vs project network, eval mode, same weights
ONNX_TOLERANCE = 1e-4  # onnxruntime vs torch
Exporter = Literal["torchscript", "dynamo"]

OPS_MODULE = "nas_ops"  # the op catalogue's name in the export directory
OPS_SOURCE = Path(search_spaces.ops.__file__)  # copied unchanged: it imports only torch
FLAGS = {  # network setting -> the CLI flag that sets it
    "layout": "--layout",
    "cells": "--cells",
    "filters": "--filters",
    "image_size": "--image-size",
    "num_classes": "--classes",
    "width": "--width",
}


class ExportError(RuntimeError):
    """The exported module or ONNX file disagrees with the project's network: a bug, exit 1."""


def module_name(name: str) -> str:
    """A valid, import-safe module name: `nasnet-a` -> `nasnet_a`; never shadows torch/stdlib."""
    text = re.sub(r"\W", "_", name.strip().lower(), flags=re.ASCII).strip("_") or "network"
    if text[0].isdigit():
        text = f"net_{text}"
    if keyword.iskeyword(text) or text in sys.stdlib_module_names or text in (
            "torch", OPS_MODULE):
        text = f"{text}_net"
    return text


# --- rendering -------------------------------------------------------------------------------


def render_module(
    genotype: Genotype,
    settings: dict[str, Any],
    stem_channels: int,
    plan: list[tuple[int, bool]],
    name: str,
    header: list[str],
    card: ModelCard | None = None,
) -> str:
    """The module's source: the template with the genotype, config and input filled in.

    `stem_channels` and `plan` (every cell's C and whether it reduces) are read off the
    project's built network, so the module never re-derives N@F rounding rules. The input
    (MEAN, STD, CLASSES) comes from `card`; without one, from the layout's trainer."""
    layout = settings["layout"]
    mean, std = (card.input.mean, card.input.std) if card else layout_normalization(layout)
    classes = card.input.classes if card else None
    config = {
        "layout": layout,
        "cells": settings["cells"],
        "filters": settings["filters"],
        "image_size": settings["image_size"],
        "num_classes": settings["num_classes"],
        "dropout": float(settings.get("dropout") or 0.0),
        "stem_channels": stem_channels,
        "stem_stride": int(settings.get("stem_stride") or 1),
    }
    comments = {
        "cells": "N: normal cells per stack",
        "filters": "F: channels of the penultimate layer",
        "image_size": "input height = width, pixels (other sizes work too)",
        "dropout": "before the classifier, active in training only",
        "stem_channels": "output channels of the stem convolution",
        "stem_stride": "the cifar stem's stride: 1 (the paper) or 2 (cells at 16x16)",
    }
    config_lines = [
        f"    {key!r}: {value!r},".replace("'", '"')
        + (f"  # {comments[key]}" if key in comments else "")
        for key, value in config.items()
    ]
    config_lines += ['    "plan": (', *_plan_lines(plan), "    ),"]
    fills = {
        "header": "\n".join(header),
        "module": name,
        "image_size": str(settings["image_size"]),
        "layout": layout,
        "genotype": _genotype_literal(genotype),
        "config": "{\n" + "\n".join(config_lines) + "\n}",
        "mean": repr(tuple(float(m) for m in mean)),
        "std": repr(tuple(float(v) for v in std)),
        "classes": _classes_literal(classes),
    }
    text = _fill(TEMPLATE.read_text(encoding="utf-8"), fills, {layout})
    return re.sub(r"\n{4,}", "\n\n\n", text).rstrip("\n") + "\n"


def _fill(template: str, fills: dict[str, str], flags: set[str]) -> str:
    """Keep `# <<if X>>` ... `# <<end>>` spans whose X is in `flags`, drop the others, and
    replace `<<name>>` placeholders."""
    out: list[str] = []
    keep = True
    for line in template.splitlines():
        marker = re.fullmatch(r"# <<if (\w+)>>", line.strip())
        if marker:
            keep = marker[1] in flags
            continue
        if line.strip() == "# <<end>>":
            keep = True
            continue
        if keep:
            out.append(line)
    text = "\n".join(out)
    for key, value in fills.items():
        text = text.replace(f"<<{key}>>", value)
    leftover = re.search(r"<<\w+>>", text)
    if leftover:
        raise ExportError(f"export template has an unfilled placeholder {leftover[0]}")
    return text


def _classes_literal(classes: tuple[str, ...] | None) -> str:
    """CLASSES as a tuple literal, a few names per line; None where the names are unknown."""
    if classes is None:
        return "None  # class names unknown: the module was exported without a checkpoint"
    lines: list[str] = []
    line = ""
    for item in (f"{json.dumps(c)}," for c in classes):
        if line and len(line) + len(item) > 84:
            lines.append(line)
            line = ""
        line = f"{line} {item}" if line else f"    {item}"
    return "(\n" + "\n".join([*lines, line]) + "\n)"


def _genotype_literal(genotype: Genotype) -> str:
    """GENOTYPE as a dict of tuples: one commented line per block."""
    lines = ["{"]
    for key, cell in (("normal", genotype.normal), ("reduce", genotype.reduce)):
        lines += [f'    "{key}": {{', '        "blocks": (']
        for k, block in enumerate(cell.blocks):
            branches = ", ".join(
                f'({i}, "{op}")' for i, op in zip(block.inputs, block.ops, strict=True)
            )
            lines.append(f'            ({branches}, "{block.combine}"),  # b{k}')
        outputs = cell.output_states()
        why = "" if cell.concat is not None else ", the block outputs no block reads"
        names = ", ".join(state_name(i) for i in outputs)
        lines += ["        ),", f"        \"concat\": {_tuple(outputs)},  # {names}{why}", "    },"]
    return "\n".join([*lines, "}"])


def _plan_lines(plan: list[tuple[int, bool]]) -> list[str]:
    """The cell plan, a few (C, reduction) pairs per line."""
    lines: list[str] = []
    line = ""
    for c, reduction in plan:
        item = f"({c}, {reduction}),"
        if line and len(line) + len(item) > 78:
            lines.append(line)
            line = ""
        line = f"{line} {item}" if line else f"        {item}"
    return [*lines, line]


def network_plan(network: nn.Module) -> tuple[int, list[tuple[int, bool]]]:
    """Stem channels and every cell's (C, reduction?) of a built `search_spaces.Network`."""
    stem = network.stem[0].out_channels
    plan = [(int(cell.channels), bool(cell.reduction)) for cell in network.cells]
    return int(stem), plan


def _tuple(values: tuple[int, ...]) -> str:
    return f"({values[0]},)" if len(values) == 1 else f"({', '.join(map(str, values))})"


def _cell_lines(label: str, cell: Cell) -> list[str]:
    """A cell in words for the header: one `bk = op(input) + op(input)` per block."""
    lines = []
    for k, block in enumerate(cell.blocks):
        terms = [f"{op}({state_name(i)})" for i, op in zip(block.inputs, block.ops, strict=True)]
        rhs = " + ".join(terms) if block.combine == "add" else f"concat({', '.join(terms)})"
        lines.append(f"b{k} = {rhs}")
    lines.append(f"out = concat({', '.join(state_name(i) for i in cell.output_states())})")
    pad = " " * len(label)
    return [f"#   {label if n == 0 else pad}{line}" for n, line in enumerate(lines)]


def _ascii(text: Any) -> str:
    """Comment-safe text: printable ASCII on one line."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in str(text))


def _header(
    name: str,
    arch_name: str,
    genotype: Genotype,
    settings: dict[str, Any],
    cost: dict[str, Any],
    card: ModelCard | None,
    weights: Path | None,
    command: str,
) -> list[str]:
    """The header comment: what the network is, what input it expects, what it costs, how
    well it did, its origin."""
    size = settings["image_size"]
    if card is None:
        accuracy = "unknown (exported without weights: the network is untrained)"
        mean, std = layout_normalization(settings["layout"])
        origin = f"the normalization nas trains the {settings['layout']} layout with"
    else:
        m = card.metrics
        split = "CIFAR-10 test split" if m.split == "test" else "val/"
        top5 = "" if m.top5 is None else f", top-5 {m.top5:.4f}"
        accuracy = f"top-1 {m.accuracy:.4f}{top5} on the {split}, as recorded in the model card"
        mean, std = card.input.mean, card.input.std
        origin = "from the checkpoint's model card"
    classes = "" if card is None or card.input.classes is None else (
        f" Classes (CLASSES): {', '.join(card.input.classes[:10])}"
        + (", ..." if len(card.input.classes) > 10 else "") + ".")
    wrapped = [*_wrap(f"{name}.py - generated by `nas export`; needs only torch and the "
                      f"{OPS_MODULE}.py beside it."), "#"]
    wrapped += _wrap(
        f"Architecture: {arch_name} (genotype key {genotype.key()}), written below as GENOTYPE:"
    )
    wrapped += _cell_lines("normal: ", genotype.normal)
    wrapped += _cell_lines("reduce: ", genotype.reduce)
    rest = [
        f"Network: {settings['layout']} layout, {settings['cells']}@{settings['filters']} "
        f"(N normal cells per stack @ F filters in the penultimate layer), "
        f"{'stem stride 2, ' if settings.get('stem_stride', 1) == 2 else ''}"
        f"{size}x{size} input, {settings['num_classes']} classes.",
        f"Input: RGB images (batch, 3, {size}, {size}) normalized per channel as "
        f"(pixel - MEAN) / STD with pixels on the 0..255 scale, MEAN = {_floats(mean)}, "
        f"STD = {_floats(std)} ({origin}); preprocess(images) does it for uint8 (0..255) or "
        f"float (0..1) images.{classes}",
        f"Cost: {cost['params']:,} parameters, {_si(cost['mult_adds'])} mult-adds "
        f"({cost['mult_adds']:,}) per {size}x{size} image; auxiliary head excluded.",
        f"Accuracy: {accuracy}.",
    ]
    if weights is not None and card is not None:
        rest.append(
            f"Weights: {name}.safetensors, the tensors of the checkpoint {weights} without "
            "the training-only auxiliary head."
        )
        r = card.recipe
        rest.append(f"Trained with: preset {r.preset}, lr {r.lr:g}, seed {r.seed}, "
                    f"{card.metrics.epochs} epochs at batch {r.batch_size}; changed from the "
                    f"preset: {json.dumps(r.changed, sort_keys=True)}")
        rest.append(f"Checkpoint created: {card.provenance.created} (nas "
                    f"{card.provenance.nas_version}, torch {card.provenance.torch_version}).")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    rest.append(f"Produced by: `{command}` (nas {package_version()}, {stamp}).")
    for line in rest:
        wrapped += _wrap(line)
    return wrapped


def _floats(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def _wrap(line: str) -> list[str]:
    """One header sentence as comment lines of at most 88 characters."""
    return textwrap.wrap(
        _ascii(line), 88, initial_indent="# ", subsequent_indent="#   ",
        break_long_words=True, break_on_hyphens=False,
    )


def _si(count: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f}{unit}"
    return str(count)


# --- checks ----------------------------------------------------------------------------------


def fit_problems(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str | None:
    """What stops `state` from loading strictly where `expected` is: one line, or None."""
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    misshapen = [
        f"{k} is {tuple(state[k].shape)} there, {tuple(v.shape)} here"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = [
        f"{len(found)} {what} (first: {found[0]})"
        for what, found in (
            ("missing tensors", missing),
            ("unexpected tensors", unexpected),
            ("shape mismatches", misshapen),
        )
        if found
    ]
    return "; ".join(problems) or None


def load_generated(path: Path) -> ModuleType:
    """Import a generated module from its file, under a private name (not in sys.modules),
    with the `nas_ops.py` beside it (never one from elsewhere on sys.path)."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"_nas_export_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    sys.modules.pop(OPS_MODULE, None)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
        sys.modules.pop(OPS_MODULE, None)
    return module


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def _fixed_input(batch: int, image_size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, image_size, image_size, generator=generator)


def export_onnx(model: nn.Module, path: Path, image_size: int, exporter: Exporter) -> None:
    """Write `model` (eval mode) as ONNX with a dynamic batch dimension."""
    import warnings

    x = _fixed_input(1, image_size)
    names = {"input_names": ["images"], "output_names": ["logits"]}
    with warnings.catch_warnings():  # the exporters narrate; the onnxruntime check decides
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(
                model, (x,), str(path), dynamo=False, opset_version=17,
                dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, **names,
            )
        else:
            torch.onnx.export(
                model, (x,), str(path), dynamo=True, verbose=False,
                dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, **names,
            )


def check_onnx(path: Path, model: nn.Module, image_size: int) -> float:
    """Max |onnxruntime - torch| over batches of 1 and 3 (the batch dimension is dynamic)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"]
    )
    worst = 0.0
    for batch in (1, 3):
        x = _fixed_input(batch, image_size)
        with torch.no_grad():
            expected = model(x)
        got = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
        if got.shape != expected.shape:
            raise ExportError(f"ONNX output is {tuple(got.shape)}, torch's {tuple(expected.shape)}")
        worst = max(worst, _max_diff(got, expected))
    if worst > ONNX_TOLERANCE:
        raise ExportError(f"ONNX output differs from torch by {worst:.3g} (> {ONNX_TOLERANCE})")
    return worst


# --- the export ------------------------------------------------------------------------------


def _settings_from_checkpoint(
    arch: Arch, card: ModelCard, path: Path, flags: dict[str, Any]
) -> tuple[Arch, dict[str, Any]]:
    """The genotype and network settings the checkpoint's card names; flags may only agree."""
    trained_arch = card.architecture
    if trained_arch.kind == "baseline" or trained_arch.genotype is None:
        raise BadInput(
            f"{path} holds the baseline {trained_arch.ref!r}, not a cell network; "
            "nas export writes cell networks only"
        )
    try:
        trained = Genotype.from_dict(trained_arch.genotype)
    except GenotypeError as exc:
        raise BadInput(f"{path}: its model card's genotype is malformed: {exc}") from None
    assert arch.genotype is not None
    if trained.key() != arch.genotype.key():
        raise BadInput(
            f"{path} was trained for {trained_arch.ref!r} (genotype {trained.key()}), "
            f"not {arch.name} (genotype {arch.genotype.key()}); "
            f"export it as `nas export {trained_arch.ref} --weights {path}`"
        )
    network = trained_arch.settings
    for field, flag in FLAGS.items():
        value = flags.get(field)
        trained_value = network.get(field)
        if field == "width":
            trained_value = 1.0 if trained_value is None else trained_value
        if value is not None and value != trained_value:
            raise BadInput(
                f"{flag} {value} contradicts {path}, which was trained with "
                f"{field} = {trained_value}; drop {flag} (the checkpoint decides)"
            )
    # The branch order inside a block decides which op sits at which key: build exactly the
    # genotype the weights were trained with (same key as REF, so the same architecture).
    built = Arch(arch.name, "genotype", trained)
    try:
        settings = built.resolve(**network)
    except TypeError as exc:
        raise BadInput(f"{path}: unknown network setting in its model card ({exc})") from None
    except ConfigError as exc:
        raise BadInput(f"{path}: its model card's network settings are invalid: {exc}") from None
    return built, settings


def export_model(
    arch: Arch,
    out: Path,
    *,
    weights: Path | None = None,
    layout: str | None = None,
    cells: int | None = None,
    filters: int | None = None,
    image_size: int | None = None,
    num_classes: int | None = None,
    width: float | None = None,
    onnx: bool = False,
    force: bool = False,
    command: str | None = None,
    exporter: Exporter = "torchscript",
) -> dict[str, Any]:
    """Export `arch` into `out`; returns the written paths (`module, weights, genotype, onnx`)
    and what was checked. Raises BadInput for anything the user can fix."""
    out = Path(out)
    if arch.kind == "baseline" or arch.genotype is None:
        raise BadInput(
            f"{arch.name} is a baseline: baselines are exported as their torchvision/timm "
            "constructor call plus the checkpoint's weights; nas export writes cell networks only"
        )
    target = _check_out(out, weights, force)
    flags = {"layout": layout, "cells": cells, "filters": filters, "image_size": image_size,
             "num_classes": num_classes, "width": width}
    card: ModelCard | None = None
    state: dict[str, torch.Tensor] | None = None
    if weights is not None:
        try:
            state, card = load_checkpoint(weights)
        except CheckpointError as exc:
            raise BadInput(str(exc)) from None
        built, settings = _settings_from_checkpoint(arch, card, weights, flags)
        with torch.device("meta"):  # shapes only: no memory for a large network
            expected = built.build(**settings).state_dict()
        problems = fit_problems(expected, state)
        if problems:
            raise BadInput(f"the weights in {weights} do not fit {_what(built, settings)}, "
                           f"the architecture its model card names: {problems}; the card and "
                           "the weights disagree, so retrain or re-save the checkpoint")
        state = {k: v for k, v in state.items() if not k.startswith(AUX_PREFIX)}
        _check_finite(state, weights)
    else:
        built = arch
        settings = arch.resolve(**{k: v for k, v in flags.items() if v is not None})
    # The deployed network: the auxiliary head is training-only, so it is dropped.
    settings = {**settings, "auxiliary": False}
    assert built.genotype is not None
    cost = inspect_arch(built, **settings)  # refuses what is beyond the caps, on meta
    _, _, size = meta_cost(built, settings)
    check_memory(EXPORT_COPIES * size, f"exporting {_what(built, settings)}")
    reference = built.build(**settings).eval()
    if state is not None:
        reference.load_state_dict(state, strict=True)
    name = module_name(arch.name)
    command = command or f"nas export {shlex.quote(arch.name)} --out {shlex.quote(str(out))}"
    header = _header(name, arch.name, built.genotype, settings, cost, card, weights, command)
    source = render_module(built.genotype, settings, *network_plan(reference), name, header,
                           card)

    # The whole export is staged in a sibling directory and swapped in: an earlier export's
    # .onnx or .safetensors never survives beside a module it does not describe.
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.export-"))
    try:
        files = _write_staged(staging, name, source, built.genotype, reference, state,
                              card, settings, onnx, exporter)
        shutil.rmtree(staging / "__pycache__", ignore_errors=True)  # from the import check
        _swap_in(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = {key: None for key in ("module", "ops", "weights", "genotype", "onnx")}
    for key, staged in files.items():
        if not key.endswith("_check"):
            result[key] = str(out / staged.name)
    return {
        **result,
        "name": name,
        "arch": arch.name,
        "layout": settings["layout"],
        "cells": settings["cells"],
        "filters": settings["filters"],
        "stem_stride": settings.get("stem_stride", 1),
        "image_size": settings["image_size"],
        "num_classes": settings["num_classes"],
        "params": cost["params"],
        "mult_adds": cost["mult_adds"],
        "max_abs_diff": files["torch_check"],
        "onnx_max_abs_diff": files.get("onnx_check"),
    }


# Every name an export writes; `--force` replaces only a directory that holds nothing else.
EXPORT_SUFFIXES = (".py", ".safetensors", ".onnx")
EXPORT_NAMES = ("genotype.json", "__pycache__")
EXPORT_COPIES = 3  # the project's network, the exported module's, the loaded weights


def _check_out(out: Path, weights: Path | None, force: bool) -> Path:
    """The real directory `out` names, checked before any work; BadInput says what is wrong."""
    problem = out_problem(out)
    if problem is not None:
        raise BadInput(f"{problem}; give a directory for the export")
    target = out.resolve()
    check_out_dir(target.parent, "the directory of --out")  # the export is staged there
    if weights is not None and target in Path(weights).resolve().parents:
        raise BadInput(f"--out {out} would overwrite the checkpoint {weights}; pick another --out")
    if not target.is_dir():
        return target
    entries = sorted(p.name for p in target.iterdir())
    if entries and not force:
        raise BadInput(f"--out {out} exists and is not empty; pick a new directory or add --force")
    foreign = [n for n in entries if not n.endswith(EXPORT_SUFFIXES) and n not in EXPORT_NAMES]
    if foreign:
        raise BadInput(f"--out {out} holds {', '.join(foreign[:3])}, which nas export did not "
                       "write; --force replaces a whole earlier export, so pick a new directory")
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise BadInput(f"--out {out} holds the working directory; export into another directory")
    return target


def _check_finite(state: dict[str, torch.Tensor], weights: Path) -> None:
    """A checkpoint that diverged exports a network that answers NaN: refuse it up front."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise BadInput(f"the weights contain NaN or Inf ({key} in {weights}); the "
                           "training diverged, so retrain (e.g. with a lower --lr)")


def _swap_in(staging: Path, target: Path) -> None:
    """Put the staged export at `target`: rename the old one aside, the new one in, then
    remove the old one; a failed rename puts the old one back."""
    os.chmod(staging, 0o755)  # mkdtemp makes it 0o700; a directory made by mkdir
    if not target.exists():
        os.rename(staging, target)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _what(arch: Arch, settings: dict[str, Any]) -> str:
    return f"{arch.name} at {settings['layout']} {settings['cells']}@{settings['filters']}"


def _write_staged(
    staging: Path,
    name: str,
    source: str,
    genotype: Genotype,
    reference: nn.Module,
    state: dict[str, torch.Tensor] | None,
    card: ModelCard | None,
    settings: dict[str, Any],
    onnx: bool,
    exporter: Exporter,
) -> dict[str, Any]:
    """Write every file into `staging` and check them; returns paths and measured diffs."""
    files: dict[str, Any] = {}
    files["module"] = staging / f"{name}.py"
    files["module"].write_text(source, encoding="utf-8")
    files["genotype"] = staging / "genotype.json"
    files["genotype"].write_text(genotype.to_json() + "\n", encoding="utf-8")
    files["ops"] = staging / f"{OPS_MODULE}.py"
    shutil.copyfile(OPS_SOURCE, files["ops"])
    module = load_generated(files["module"])
    if state is not None and card is not None:
        files["weights"] = staging / f"{name}.safetensors"
        deployed = dataclasses.replace(card.architecture, settings={
            **card.architecture.settings, "auxiliary": False})
        save_state(files["weights"], state, dataclasses.replace(card, architecture=deployed))
        exported = module.build(files["weights"])  # exercises the module's own reader
    else:
        exported = module.build()
        module.load_state(exported, reference.state_dict(), "the project's network")
    exported.eval()
    params = sum(p.numel() for p in exported.parameters())
    if params != count_params(reference):
        raise ExportError(
            f"exported module has {params:,} parameters, the project's network "
            f"{count_params(reference):,}"
        )
    x = _fixed_input(2, settings["image_size"])
    with torch.no_grad():
        diff = _max_diff(exported(x), reference(x))
    if not diff <= TOLERANCE:
        raise ExportError(f"exported module differs from the project's network by {diff:.3g}")
    files["torch_check"] = diff
    if onnx:
        try:
            import onnx as _onnx  # noqa: F401  (the exporter needs it)
            import onnxruntime  # noqa: F401
        except ImportError:
            raise BadInput("--onnx needs onnx and onnxruntime: pip install 'nas[export]'") from None
        files["onnx"] = staging / f"{name}.onnx"
        export_onnx(exported, files["onnx"], settings["image_size"], exporter)
        files["onnx_check"] = check_onnx(files["onnx"], exported, settings["image_size"])
    return files


def run_export(
    ref: str,
    out: Path,
    *,
    storage: str,
    weights: Path | None = None,
    onnx: bool = False,
    force: bool = False,
    **size: Any,
) -> dict[str, Any]:
    """Resolve REF and export it; what `nas export` runs."""
    check_storage_url(storage)
    arch = resolve_ref(ref, storage)
    words = ["nas", "export", ref, "--out", str(out)]
    if weights is not None:
        words += ["--weights", str(weights)]
    for field, flag in FLAGS.items():
        if size.get(field) is not None:
            words += [flag, str(size[field])]
    words += [flag for flag, on in (("--onnx", onnx), ("--force", force)) if on]
    return export_model(arch, out, weights=weights, onnx=onnx, force=force,
                        command=shlex.join(words), **size)
