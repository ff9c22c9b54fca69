"""Checks before the work (issue 17 classes 6, 8, 10 and 11; docs/reliability.md sections
10 to 13), table-driven: each case exits 2 with one line on stderr, before any training step
or real allocation, and leaves nothing behind (no checkpoint, no export, no database row).

- class 6: a bad database, malformed NAS_STORAGE or unwritable --out is found by nas train,
  nas baselines and nas export at their start, not after training;
- class 8: sizes are bounded and counted on the meta device before anything is allocated;
- class 10: nas export --force replaces a whole earlier export; NaN/Inf weights are refused;
- class 11: an --out that is a dangling symlink or lies under a file, and a checkpoint with
  malformed metadata, are bad input.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest
import torch
from faultkit import nothing_written, record

from nas.cli import main
from nas.errors import BadInput
from nas.preflight import MAX_MULT_ADDS, MAX_PARAMS, available_memory, check_memory
from search_spaces import count_mult_adds, count_params, get_arch
from workers.card import make_card
from workers.checkpoint import save_checkpoint
from workers.data import CLASSES

SMALL = {"layout": "cifar", "cells": 1, "filters": 24, "image_size": 32, "num_classes": 10}
TINY_TRAIN = ["--preset", "cpu-quick", "--cells", "1", "--filters", "24", "--epochs", "1",
              "--subset", "64", "--max-steps", "1"]
BASELINE = ["baselines", "--arch", "lenet5", "--width-rule", "0.5", "--epochs", "1",
            "--subset", "64", "--max-steps", "1"]
EXPORT = ["export", "nasnet-a", "--cells", "1", "--filters", "24"]
FIGURES: dict[str, dict[str, float]] = {}


def make_checkpoint(path: Path, poison: float | None = None) -> Path:
    """A real nasnet-a 1@24 checkpoint with its card, as `nas train` writes one; `poison`
    puts that value (NaN, Inf) into one weight, as a diverged run leaves it."""
    arch = get_arch("nasnet-a")
    settings = arch.resolve(**SMALL)
    torch.manual_seed(0)
    net = arch.build(**settings)
    if poison is not None:
        with torch.no_grad():
            net.head[-1].weight[0, 0] = poison
    card = make_card(
        ref=arch.name, kind="genotype", genotype=arch.genotype.to_dict(),
        key=arch.genotype.key(), settings=settings, classes=CLASSES, preset="cpu-quick",
        train={"epochs": 1, "seed": 0, "lr": 0.1, "batch_size": 4},
        preset_train={"epochs": 1, "lr": 0.1, "batch_size": 4}, accuracy=0.1, split="test",
        top5=None, train_seconds=0.1, images_per_s=1.0, epochs=1, params=count_params(net),
        mult_adds=count_mult_adds(net, 32), command="train", data_fingerprint=None)
    return save_checkpoint(path, net, card)


def safetensors_file(path: Path, header: bytes) -> Path:
    """A file with a safetensors length prefix and the given header bytes."""
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


def with_metadata(path: Path, metadata: object) -> Path:
    return safetensors_file(path, json.dumps({"__metadata__": metadata}).encode())


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Paths that are wrong in every way a user gets them wrong, and bad checkpoints."""
    root = tmp_path_factory.mktemp("before")
    (root / "a-file").write_text("not a directory")
    (root / "dangling").symlink_to(root / "nowhere")
    m = root / "meta"
    m.mkdir()
    safetensors_file(m / "header-list.safetensors", b"[1, 2]")
    with_metadata(m / "metadata-list.safetensors", [1, 2])
    with_metadata(m / "card-list.safetensors", {"nas_card": "[1, 2]"})
    with_metadata(m / "card-number.safetensors", {"nas_card": "5"})
    safetensors_file(m / "card-not-string.safetensors",
                     json.dumps({"__metadata__": {"nas_card": {"version": 1}}}).encode())
    with_metadata(m / "card-deep.safetensors", {"nas_card": "[" * 100_000 + "]" * 100_000})
    with_metadata(m / "card-arch-list.safetensors",
                  {"nas_card": json.dumps({"version": 1, "architecture": [1]})})
    with_metadata(m / "description-list.safetensors", {"nas": "[1]"})
    with_metadata(m / "description-string.safetensors", {"nas": '"nasnet-a"'})
    safetensors_file(m / "header-deep.safetensors", b"[" * 100_000 + b"]" * 100_000)
    make_checkpoint(m / "nan.safetensors", float("nan"))
    make_checkpoint(m / "inf.safetensors", float("inf"))
    make_checkpoint(m / "good.safetensors")
    return root


def run_bad(args: list[str], files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str], storage: str | None = None) -> tuple[str, float]:
    """Run the CLI in tmp_path; require exit 2, one line, nothing written; (stderr, seconds)."""
    db_file = tmp_path / "nas.db"
    monkeypatch.setenv("NAS_STORAGE", storage or f"sqlite:///{db_file}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{f}", str(files)).replace("{t}", str(tmp_path)) for a in args]
    started = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - started
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("error: ") and out == "", err
    assert "Traceback" not in err and "pw-Secret-42" not in err
    nothing_written(db_file)
    left = [p for p in tmp_path.rglob("*") if p.suffix in (".safetensors", ".py", ".onnx")]
    assert not left, f"bad input left files behind: {left}"
    assert not (tmp_path / "out").exists() and not (tmp_path / "checkpoints").exists()
    return err, seconds


# -- class 6 (and the --out part of 11): the end of the run is checked at its start ---------

BEFORE = [
    ("train storage not a url", ["train", "nasnet-a", *TINY_TRAIN, "--data", "{cifar}"],
     "not a database URL", "not a url"),
    ("train storage missing dir", ["train", "nasnet-a", *TINY_TRAIN, "--data", "{cifar}"],
     "does not exist", "sqlite:////nonexistent/dir/nas.db"),
    ("train storage unreachable", ["train", "nasnet-a", *TINY_TRAIN, "--data", "{cifar}"],
     "127.0.0.1", "postgresql+psycopg://u:pw-Secret-42@127.0.0.1:1/nas"),
    ("train storage not sqlite", ["train", "nasnet-a", *TINY_TRAIN, "--data", "{cifar}"],
     "cannot open database", "sqlite:///{f}/a-file"),
    ("train out dangling symlink", ["train", "nasnet-a", *TINY_TRAIN, "--data", "{cifar}",
                                    "--out", "{f}/dangling"], "does not exist", None),
    ("train out under a file", ["train", "nasnet-a", *TINY_TRAIN, "--data", "{cifar}",
                                "--out", "{f}/a-file/ck"], "lies under", None),
    ("train out unwritable", ["train", "nasnet-a", *TINY_TRAIN, "--data", "{cifar}",
                              "--out", "/proc/nas-checkpoints"], "cannot write into", None),
    ("train data missing", ["train", "nasnet-a", *TINY_TRAIN, "--data", "{t}/no-data",
                            "--out", "{t}/ck"], "not a directory", None),
    ("bench data missing", ["bench", "train", "nasnet-a", "--cells", "1", "--filters",
                                 "24", "--data", "{t}/no-data"], "not a directory", None),
    ("baselines storage not a url", [*BASELINE, "--data", "{cifar}"], "not a database URL",
     "not a url"),
    ("baselines storage missing dir", [*BASELINE, "--data", "{cifar}"], "does not exist",
     "sqlite:////nonexistent/dir/nas.db"),
    ("baselines out dangling symlink", [*BASELINE, "--data", "{cifar}", "--out",
                                        "{f}/dangling"], "does not exist", None),
    ("baselines out under a file", [*BASELINE, "--data", "{cifar}", "--out", "{f}/a-file/x"],
     "lies under", None),
    ("export storage not a url", [*EXPORT, "--out", "{t}/out"], "not a database URL",
     "not a url"),
    ("export out dangling symlink", [*EXPORT, "--out", "{f}/dangling"], "does not exist", None),
    ("export out under a file", [*EXPORT, "--out", "{f}/a-file/x"], "lies under", None),
    ("export out a file", [*EXPORT, "--out", "{f}/a-file"], "is a file", None),
    ("export out unwritable", [*EXPORT, "--out", "/proc/nas-export"],
     "cannot write into the directory of --out /proc", None),
]


@pytest.mark.parametrize(("case", "args", "message", "storage"), BEFORE,
                         ids=[c[0] for c in BEFORE])
def test_the_end_of_the_run_is_checked_at_its_start(
    case: str, args: list[str], message: str, storage: str | None, files: Path,
    cifar_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No data is decoded and no step runs: each case ends in well under the seconds that
    loading CIFAR-10 alone takes, and leaves no checkpoint, row or export."""
    args = [a.replace("{cifar}", str(cifar_dir)) for a in args]
    storage = None if storage is None else storage.replace("{f}", str(files))
    err, seconds = run_bad(args, files, tmp_path, monkeypatch, capsys, storage)
    assert message in err, err
    assert seconds < 30, f"{case}: {seconds:.1f}s before the refusal"
    FIGURES.setdefault("before the work", {})[case] = round(seconds, 2)
    assert not (files / "nowhere").exists(), "a dangling --out's target was created"


# -- class 8: sizes bounded, cost counted on the meta device before allocation -------------

SIZES = [
    ("inspect cells 10000", ["inspect", "nasnet-a", "--cells", "10000"],
     "--cells must be at most 32"),
    ("inspect filters 10^12", ["inspect", "nasnet-a", "--filters", str(10**12)],
     "--filters must be at most"),
    ("inspect image size 100000", ["inspect", "nasnet-a", "--image-size", "100000"],
     "--image-size must be at most 2048"),
    ("inspect classes 10^9", ["inspect", "nasnet-a", "--classes", str(10**9)],
     "--classes must be at most"),
    ("inspect params cap", ["inspect", "nasnet-a", "--cells", "1", "--filters", "100000"],
     f"above the cap of {MAX_PARAMS:,}"),
    ("inspect baseline params cap", ["inspect", "vgg16", "--classes", "1000000"],
     f"above the cap of {MAX_PARAMS:,}"),
    ("inspect mult-adds cap", ["inspect", "nasnet-a", "--layout", "imagenet", "--cells", "6",
                               "--filters", "8064", "--image-size", "2048"],
     f"above the cap of {MAX_MULT_ADDS:,}"),
    ("export 1@100000 (45 GB)", [*EXPORT[:2], "--cells", "1", "--filters", "100000",
                                 "--out", "{t}/out"], "above the cap"),
    ("export cells 10000", [*EXPORT[:2], "--cells", "10000", "--out", "{t}/out"],
     "--cells must be at most"),
    ("train 1@100000", ["train", "nasnet-a", "--cells", "1", "--filters", "100000",
                        "--data", "{t}/no-data"], "above the cap"),
    ("train cells 10000", ["train", "nasnet-a", "--cells", "10000"], "--cells must be at most"),
    ("bench train 1@100000", ["bench", "train", "nasnet-a", "--cells", "1", "--filters",
                              "100000", "--data", "{t}/no-data"], "above the cap"),
]


@pytest.mark.parametrize(("case", "args", "message"), SIZES, ids=[c[0] for c in SIZES])
def test_sizes_are_refused_before_allocation(
    case: str, args: list[str], message: str, files: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """`nas inspect nasnet-a --cells 10000` ran for many minutes and `nas export ... 1@100000`
    tried to allocate 45 GB; now each is a one-line refusal naming the cap and the value."""
    err, seconds = run_bad(args, files, tmp_path, monkeypatch, capsys)
    assert message in err, err
    assert seconds < 60, f"{case}: {seconds:.1f}s before the refusal"
    FIGURES.setdefault("size before allocation", {})[case] = round(seconds, 2)


@pytest.mark.parametrize("factor", [1.5, 4.0, 1000.0])
def test_a_network_larger_than_the_available_memory_is_refused(factor: float) -> None:
    """Against this machine's real MemAvailable: more than it has is bad input, naming both."""
    free = available_memory()
    assert free > 0
    with pytest.raises(BadInput, match="GiB available"):
        check_memory(int(free * factor), "training a test network")
    check_memory(free // 4, "a network that fits")  # what fits passes


# -- class 10: --force replaces the whole export; NaN/Inf weights leave nothing -----------


def export_ok(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


FORCE = [
    # (case, the earlier export's extra flags, the new export's flags, files expected after)
    ("weights+onnx then bare", ["--weights", "{good}", "--onnx"], [],
     ["genotype.json", "nas_ops.py", "nasnet_a.py"]),
    ("weights+onnx then weights", ["--weights", "{good}", "--onnx"], ["--weights", "{good}"],
     ["genotype.json", "nas_ops.py", "nasnet_a.py", "nasnet_a.safetensors"]),
    ("another ref before", ["--ref", "{genotype}"], [],
     ["genotype.json", "nas_ops.py", "nasnet_a.py"]),
    ("through a symlink", ["--weights", "{good}", "--onnx"], ["--via-link"],
     ["genotype.json", "nas_ops.py", "nasnet_a.py"]),
]


@pytest.mark.parametrize(("case", "before", "after", "expected"), FORCE,
                         ids=[c[0] for c in FORCE])
def test_force_replaces_the_whole_earlier_export(
    case: str, before: list[str], after: list[str], expected: list[str], files: Path,
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An earlier export's .onnx and .safetensors never stay beside a module they do not
    describe; nothing staged is left beside the directory."""
    monkeypatch.chdir(tmp_path)
    good = str(files / "meta" / "good.safetensors")
    out = tmp_path / "out"
    ref = "nasnet-a"
    if "--ref" in before:
        (tmp_path / "other.json").write_text(get_arch("amoebanet-a").genotype.to_json())
        ref = str(tmp_path / "other.json")
        before = []
    first = export_ok(["export", ref, "--out", str(out), "--cells", "1", "--filters", "24",
                       *[a.replace("{good}", good) for a in before]], capsys)
    assert Path(str(first["module"])).is_file()
    target = out
    if "--via-link" in after:
        target = tmp_path / "link"
        target.symlink_to(out)
        after = []
    started = time.perf_counter()
    second = export_ok(["export", "nasnet-a", "--out", str(target), "--cells", "1",
                        "--filters", "24", "--force", *[a.replace("{good}", good)
                                                        for a in after]], capsys)
    FIGURES.setdefault("export --force", {})[case] = round(time.perf_counter() - started, 2)
    assert sorted(p.name for p in out.iterdir()) == expected
    assert Path(str(second["module"])).resolve().parent == out.resolve()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


BAD_EXPORTS = [
    ("nan weights", ["--weights", "{m}/nan.safetensors"], "the weights contain NaN"),
    ("inf weights", ["--weights", "{m}/inf.safetensors"], "the weights contain NaN or Inf"),
    ("nan weights over an export", ["--weights", "{m}/nan.safetensors", "--force"],
     "the weights contain NaN"),
    ("force over other files", ["--force"], "nas export did not write"),
    ("force over the working directory", ["--force", "--cwd"], "working directory"),
]


@pytest.mark.parametrize(("case", "args", "message"), BAD_EXPORTS,
                         ids=[c[0] for c in BAD_EXPORTS])
def test_a_refused_export_leaves_the_directory_as_it_was(
    case: str, args: list[str], message: str, files: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    if "--force" in args:  # an earlier export (and, for one case, a file of the user's)
        export_ok(["export", "nasnet-a", "--out", str(out), "--cells", "1", "--filters", "24"],
                  capsys)
        if case == "force over other files":
            (out / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()} if out.exists() else None
    monkeypatch.chdir(out if "--cwd" in args else tmp_path)
    argv = [a.replace("{m}", str(files / "meta")) for a in args if a != "--cwd"]
    code = main([*EXPORT, "--out", str(out), *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    after = {p.name: p.read_bytes() for p in out.iterdir()} if out.exists() else None
    assert after == before, "a refused export changed --out"
    assert [p.name for p in tmp_path.iterdir() if p.name != "out"] == []


# -- class 11: malformed checkpoint metadata is bad input ----------------------------------

METADATA = ["header-list", "metadata-list", "card-list", "card-number", "card-not-string",
            "card-deep", "card-arch-list", "description-list", "description-string",
            "header-deep"]


@pytest.mark.parametrize("name", METADATA)
def test_malformed_checkpoint_metadata_is_bad_input(
    name: str, files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A JSON list for the header or metadata, a card or description that is not an object,
    a non-string value, JSON nested 100,000 deep: exit 2 naming the file, nothing written."""
    path = files / "meta" / f"{name}.safetensors"
    err, _ = run_bad([*EXPORT, "--weights", str(path), "--out", "{t}/out"], files, tmp_path,
                     monkeypatch, capsys)
    assert str(path) in err and len(err) < 400, err


def test_figures() -> None:
    """Record what the tables above measured (NAS_FAULT_FIGURES) for docs/reliability.md."""
    record("before the work", {
        "cases": len(BEFORE), "sizes": len(SIZES), "force": len(FORCE),
        "refused_exports": len(BAD_EXPORTS), "metadata": len(METADATA),
        "seconds": FIGURES,
    })
