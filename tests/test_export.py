"""`nas export`: the generated module needs only torch and reproduces the project's network.

Networks are 1@48 on 32x32 images so every test runs in seconds on 2 CPU cores. Checkpoints
are made here the way `nas train` writes them: a network built by `Arch.build`, perturbed by
random BatchNorm statistics and two SGD steps (with the auxiliary head), saved with
`save_checkpoint` and its model card.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import search_spaces.ops
from nas.cli import main
from nas.refs import resolve_ref
from nas.results.export import export_model, load_generated, module_name
from search_spaces import (
    OPS,
    Arch,
    Block,
    Cell,
    Genotype,
    count_mult_adds,
    count_params,
    get_arch,
    sample_genotype,
)
from workers.card import make_card
from workers.checkpoint import load_checkpoint, read_card, save_checkpoint, save_state
from workers.data import CLASSES as CIFAR_CLASSES

SMALL = {"layout": "cifar", "cells": 1, "filters": 48, "image_size": 32, "num_classes": 10}
SEARCHED_SEED = 2  # a sampled genotype with concat blocks, narrowed states, stride-2 identity
RUFF = Path(sys.executable).with_name("ruff")
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
TORCH_SITE = Path(torch.__file__).resolve().parents[1]

# Every op at least once, concat blocks read by later ops, stride-2 identity and convs.
ALL_OPS = Genotype(
    normal=Cell((
        Block((0, 1), ("identity", "conv_1x3_3x1")),
        Block((1, 2), ("conv_1x7_7x1", "dil_conv_3x3"), "concat"),
        Block((3, 0), ("avg_pool_3x3", "max_pool_3x3")),
        Block((2, 4), ("max_pool_5x5", "max_pool_7x7")),
        Block((5, 3), ("conv_1x1", "conv_3x3"), "concat"),
    )),
    reduce=Cell((
        Block((0, 1), ("sep_conv_3x3", "sep_conv_5x5")),
        Block((1, 0), ("sep_conv_7x7", "dil_sep_conv_3x3")),
        Block((2, 1), ("dil_sep_conv_5x5", "identity"), "concat"),
        Block((0, 4), ("conv_1x3_3x1", "max_pool_3x3")),
        Block((3, 1), ("avg_pool_3x3", "conv_3x3")),
    )),
).validate()


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Two shared cores: a second torch thread only waits on the other engineers' work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_checkpoint(path: Path, arch: Arch, auxiliary: bool = True, **size: Any) -> Path:
    """A trained-looking checkpoint of `arch` with a model card as `nas train` writes one."""
    settings = arch.resolve(**{**SMALL, **size}, auxiliary=auxiliary, drop_path=0.2)
    torch.manual_seed(1)
    net = arch.build(**settings)
    for module in net.modules():  # BatchNorm statistics far from their initial 0 / 1
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0.0, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net.train()
    net.set_progress(0.5)
    for _ in range(2):
        x = torch.randn(4, 3, settings["image_size"], settings["image_size"])
        y = torch.randint(0, settings["num_classes"], (4,))
        loss = torch.nn.functional.cross_entropy(net(x), y)
        if net.aux_logits is not None:
            loss = loss + 0.4 * torch.nn.functional.cross_entropy(net.aux_logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    card = make_card(
        ref=arch.name, kind="genotype",
        genotype=arch.genotype.to_dict() if arch.genotype else None,
        key=arch.genotype.key() if arch.genotype else None, settings=settings,
        classes=CIFAR_CLASSES if settings["num_classes"] == 10 else None, preset="cpu-quick",
        train={"epochs": 1, "max_steps": 2, "seed": 1, "lr": 0.1, "batch_size": 4},
        preset_train={"epochs": 1, "lr": 0.1, "batch_size": 4},
        accuracy=0.1234,  # a stand-in: nothing here scores the network
        split="test", top5=None, train_seconds=0.5, images_per_s=8.0, epochs=1,
        params=count_params(net), mult_adds=count_mult_adds(net, settings["image_size"]),
        command="train", data_fingerprint=None,
    )
    return save_checkpoint(path, net, card)


def project_network(checkpoint: Path) -> torch.nn.Module:
    """The project's own network from a checkpoint, as `nas` would rebuild it."""
    state, card = load_checkpoint(checkpoint)
    built = card.architecture
    arch = Arch(built.ref, "genotype", Genotype.from_dict(built.genotype))
    net = arch.build(**built.settings)
    net.load_state_dict(state)
    return net.eval()


def fixed_input(batch: int = 2, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


def export_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code = main(["export", *args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def bad_input(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI, require exit 2 and a one-line message; return the message."""
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.fixture(params=["nasnet-a", "searched"])
def ref(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A published genotype name, or a searched genotype's JSON file (a STUDY:best stand-in)."""
    if request.param == "nasnet-a":
        return "nasnet-a"
    path = tmp_path / "searched.json"
    path.write_text(sample_genotype(random.Random(SEARCHED_SEED)).to_json())
    return str(path)


# Runs with `python -I -S`: no site-packages, no PYTHONPATH, no working directory; only the
# export directory and torch's site-packages are put on sys.path, and the project must not
# be importable from there (its editable install lives in a .pth file, which -S skips).
CLEAN_SCRIPT = """
import json, sys
export_dir, torch_site, name = sys.argv[1:4]
sys.path[:] = [export_dir, torch_site] + [p for p in sys.path if "site-packages" not in p]
for project in ("search_spaces", "nas", "workers"):
    try:
        __import__(project)
    except ImportError:
        pass
    else:
        raise SystemExit(f"the project's {project} is importable")
import torch
torch.set_num_threads(1)
module = __import__(name)
model = module.build(f"{export_dir}/{name}.safetensors").eval()
x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    logits = model(x)
images = torch.arange(2 * 3 * 32 * 32).remainder(256).to(torch.uint8).view(2, 3, 32, 32)
with torch.no_grad():
    from_uint8 = model(module.preprocess(images))
print(json.dumps({
    "file": module.__file__,
    "ops_file": sys.modules["nas_ops"].__file__,
    "preprocessed_logits": from_uint8.tolist(),
    "params": sum(p.numel() for p in model.parameters()),
    "logits": logits.tolist(),
    "safetensors_imported": "safetensors" in sys.modules,
}))
"""


def run_clean(export_dir: Path, name: str) -> dict[str, Any]:
    """Import the exported module in `python -I -S` with only the export directory and
    torch on sys.path; its params and logits on the fixed input."""
    run = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CLEAN_SCRIPT, str(export_dir), str(TORCH_SITE),
         name],
        capture_output=True, text=True, cwd=export_dir.parent, timeout=120,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def export_and_compare(ref: str, checkpoint: Path, out: Path, storage: str | None = None
                       ) -> None:
    """`nas export REF --weights CHECKPOINT`, then import the module in a clean interpreter
    (only the export directory and torch) and match the project's network within 1e-5."""
    storage_args = ["--storage", storage] if storage else []
    assert main(["export", ref, "--weights", str(checkpoint), "--out", str(out),
                 *storage_args]) == 0
    clean = run_clean(out, module_name(resolve_ref(ref, storage).name))
    project = project_network(checkpoint)
    with torch.no_grad():
        expected = project(fixed_input())
    assert (torch.tensor(clean["logits"]) - expected).abs().max().item() <= 1e-5
    assert clean["params"] == count_params(project)


def test_exported_module_matches_project_network_without_the_project(
    ref: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arch = resolve_ref(ref)
    checkpoint = make_checkpoint(tmp_path / "ckpt.safetensors", arch)
    out = tmp_path / "export"
    result = export_cli(ref, "--weights", str(checkpoint), "--out", str(out), capsys=capsys)
    name = module_name(arch.name)
    assert {"module", "weights", "genotype", "onnx"} <= result.keys()
    assert result["module"] == str(out / f"{name}.py")
    assert result["weights"] == str(out / f"{name}.safetensors")
    assert result["genotype"] == str(out / "genotype.json") and result["onnx"] is None
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["genotype.json", f"{name}.py", f"{name}.safetensors", "nas_ops.py"]
    )
    # the op catalogue is the project's own file, not a copy kept by hand
    assert (out / "nas_ops.py").read_bytes() == Path(search_spaces.ops.__file__).read_bytes()

    clean = run_clean(out, name)
    assert clean["file"] == result["module"] and clean["ops_file"] == str(out / "nas_ops.py")
    assert len(clean["preprocessed_logits"]) == 2  # preprocess runs without the project too
    assert not clean["safetensors_imported"]  # the module's own reader, not the package

    project = project_network(checkpoint)  # trained with its auxiliary head
    assert project.aux_head is not None
    with torch.no_grad():
        expected = project(fixed_input())
    diff = (torch.tensor(clean["logits"]) - expected).abs().max().item()
    assert diff <= 1e-5
    assert clean["params"] == count_params(project) == result["params"]
    assert expected.abs().max() > 1e-3  # a real comparison, not two vectors of zeros

    # One safetensors file loads into both: the project's network without the training-only
    # auxiliary head takes the exported weights with strict keys.
    _, card = load_checkpoint(checkpoint)
    deploy = arch.build(**{**card.architecture.settings, "auxiliary": False})
    shipped = read_card(Path(result["weights"]))  # the exported weights carry the card too
    assert shipped.architecture.settings == {**card.architecture.settings, "auxiliary": False}
    assert (shipped.input, shipped.metrics) == (card.input, card.metrics)
    deploy.load_state_dict(load_file(result["weights"]), strict=True)
    # ... and the exported module takes the training checkpoint itself (aux keys skipped).
    module = load_generated(Path(result["module"]))
    direct = module.build(checkpoint).eval()
    with torch.no_grad():
        assert (direct(fixed_input()) - expected).abs().max() <= 1e-5

    # genotype.json is a REF again, and its genotype is the exported one.
    assert Genotype.from_json(Path(result["genotype"]).read_text()) == arch.genotype
    assert main(["show", result["genotype"], "--json"]) == 0
    capsys.readouterr()


def real_images(cifar_dir: Path, count: int = 4) -> torch.Tensor:
    """A few real CIFAR-10 test images as uint8 (count, 3, 32, 32), one class each."""
    from PIL import Image

    folders = sorted((cifar_dir / "test").iterdir())[:count]
    arrays = [np.asarray(Image.open(sorted(f.iterdir())[0]).convert("RGB")) for f in folders]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("layout", ["cifar", "imagenet"])
def test_preprocess_then_model_matches_the_projects_normalize_and_network(
    layout: str, cifar_dir: Path, tmp_path: Path
) -> None:
    """uint8 images through the export's own preprocess and network give the logits the
    project computes with its trainer's normalize and its network, within 1e-5; [0, 1]
    floats give the same."""
    from functools import partial

    from workers.augment import IMAGENET_MEAN, IMAGENET_STD
    from workers.augment import normalize as cifar_normalize

    imagenet_normalize = partial(cifar_normalize, mean=IMAGENET_MEAN, std=IMAGENET_STD)

    checkpoint = make_checkpoint(tmp_path / "ckpt.safetensors", get_arch("nasnet-a"),
                                 layout=layout)
    result = export_model(get_arch("nasnet-a"), tmp_path / "x", weights=checkpoint)
    module = load_generated(Path(result["module"]))
    model = module.build(result["weights"]).eval()
    images = real_images(cifar_dir)
    normalize = cifar_normalize if layout == "cifar" else imagenet_normalize
    project = project_network(checkpoint)
    with torch.no_grad():
        expected = project(normalize(images))
        got = model(module.preprocess(images))
        from_floats = model(module.preprocess(images.float() / 255))
    assert (got - expected).abs().max().item() <= 1e-5
    assert (from_floats - expected).abs().max().item() <= 1e-5
    assert expected.abs().max() > 1e-3
    assert module.IMAGE_SIZE == 32 and len(module.MEAN) == len(module.STD) == 3
    with pytest.raises(ValueError, match="uint8"):
        module.preprocess(images.long())


def test_generated_source_is_readable_ruff_clean_and_imports_only_torch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = make_checkpoint(tmp_path / "ckpt.safetensors", get_arch("nasnet-a"))
    result = export_cli("nasnet-a", "--weights", str(checkpoint), "--out", str(tmp_path / "x"),
                        capsys=capsys)
    source = Path(result["module"]).read_text()
    lint = subprocess.run(
        [str(RUFF), "check", "--no-cache", "--config", str(PYPROJECT), result["module"]],
        capture_output=True, text=True,
    )
    assert lint.returncode == 0, lint.stdout
    imports = {line.split()[1] for line in source.splitlines()
               if line.startswith(("import ", "from "))}
    assert imports == {"__future__", "json", "math", "sys", "pathlib", "torch", "nas_ops"}
    header = " ".join(line.lstrip("# ") for line in source.split('"""')[0].splitlines())
    for fact in ("nasnet-a", "b0 = sep_conv_5x5(h_i) + sep_conv_3x3(h_{i-1})",
                 "cifar layout, 1@48", f"{result['params']:,} parameters", "mult-adds",
                 "top-1 0.1234 on the CIFAR-10 test split", "nas export nasnet-a --out",
                 "--weights", "auxiliary head", "MEAN = (125.31, 122.95, 113.87)",
                 "0..255 scale", "preprocess(images)", "Classes (CLASSES): airplane",
                 "preset cpu-quick, lr 0.1, seed 1"):
        assert fact in header, fact
    # The input is stated in code too, from the card; the ops come from the one catalogue.
    assert "MEAN = (125.31, 122.95, 113.87)" in source and "IMAGE_SIZE = 32" in source
    assert '"airplane",' in source and "def preprocess(images" in source
    assert "from nas_ops import OPS" in source and "class SepConv" not in source
    # The genotype is data, not unrolled code.
    assert '((1, "sep_conv_5x5"), (0, "sep_conv_3x3"), "add"),  # b0' in source
    assert "def build(weights" in source


@pytest.mark.parametrize("cells", [0, 1])  # N = 0: the reduction cells only (cpu-search)
@pytest.mark.parametrize("layout", ["cifar", "imagenet"])
def test_every_op_exports_with_the_projects_keys_and_outputs(
    layout: str, cells: int, tmp_path: Path
) -> None:
    arch = Arch("all-ops", "genotype", ALL_OPS)
    assert {op for c in (ALL_OPS.normal, ALL_OPS.reduce) for b in c.blocks for op in b.ops} \
        == set(OPS)
    result = export_model(arch, tmp_path, layout=layout, cells=cells, filters=48,
                          image_size=32, num_classes=7)
    assert result["max_abs_diff"] <= 1e-5
    torch.manual_seed(3)
    project = arch.build(layout=layout, cells=cells, filters=48, image_size=32, num_classes=7)
    for module in project.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0.0, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    project.eval()
    exported = load_generated(Path(result["module"])).build().eval()
    assert exported.state_dict().keys() == project.state_dict().keys()
    exported.load_state_dict(project.state_dict(), strict=True)
    with torch.no_grad():
        expected = project(fixed_input())
        assert (exported(fixed_input()) - expected).abs().max() <= 1e-5
    assert expected.shape == (2, 7)
    assert sum(p.numel() for p in exported.parameters()) == count_params(project)


def test_onnx_runs_in_onnxruntime_with_a_dynamic_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnxruntime

    path = tmp_path / "searched.json"
    path.write_text(sample_genotype(random.Random(SEARCHED_SEED)).to_json())
    checkpoint = make_checkpoint(tmp_path / "ckpt.safetensors", resolve_ref(str(path)))
    result = export_cli(str(path), "--weights", str(checkpoint), "--out", str(tmp_path / "x"),
                        "--onnx", capsys=capsys)
    assert result["onnx"] == str(tmp_path / "x" / "searched.onnx")
    assert result["onnx_max_abs_diff"] <= 1e-4
    session = onnxruntime.InferenceSession(result["onnx"], providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"
    project = project_network(checkpoint)
    for batch in (1, 3):
        x = fixed_input(batch)
        got = session.run(None, {"images": x.numpy()})[0]
        with torch.no_grad():
            expected = project(x).numpy()
        assert got.shape == (batch, 10)
        assert np.abs(got - expected).max() <= 1e-4


@pytest.mark.slow
def test_onnx_with_the_torch_export_based_exporter(tmp_path: Path) -> None:
    result = export_model(get_arch("nasnet-a"), tmp_path, cells=1, filters=48, onnx=True,
                          exporter="dynamo")
    assert result["onnx_max_abs_diff"] <= 1e-4


# --- bad input: exit 2, one line, nothing written ------------------------------------------


def test_unresolvable_ref_and_baselines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert "unknown architecture" in bad_input(["export", "no-such-net", "--out", str(out)],
                                               capsys)
    err = bad_input(["export", str(tmp_path / "missing.json"), "--out", str(out)], capsys)
    assert "does not exist" in err
    err = bad_input(["export", "resnet18", "--out", str(out)], capsys)
    assert "constructor call" in err and "weights" in err
    assert not out.exists()


def test_flags_that_contradict_the_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = make_checkpoint(tmp_path / "ckpt.safetensors", get_arch("nasnet-a"))
    base = ["export", "nasnet-a", "--weights", str(checkpoint), "--out", str(tmp_path / "o")]
    assert "--cells 2 contradicts" in bad_input([*base, "--cells", "2"], capsys)
    assert "--layout imagenet contradicts" in bad_input([*base, "--layout", "imagenet"], capsys)
    assert "--classes 100 contradicts" in bad_input([*base, "--classes", "100"], capsys)
    # Flags that agree are fine.
    result = export_cli(*base[1:], "--cells", "1", "--filters", "48", "--layout", "cifar",
                        capsys=capsys)
    assert Path(result["weights"]).is_file()


def test_non_empty_output_directory_needs_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["export", "nasnet-a", "--out", str(out), "--cells", "1", "--filters", "48"]
    assert "--force" in bad_input(args, capsys)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    # --force replaces a whole earlier export, so it refuses a directory of other files.
    assert "nas export did not write" in bad_input([*args, "--force"], capsys)
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    export_cli(*args[1:], capsys=capsys)
    result = export_cli(*args[1:], "--force", capsys=capsys)
    assert Path(result["module"]).is_file()
    assert sorted(p.name for p in out.iterdir()) == ["genotype.json", "nas_ops.py", "nasnet_a.py"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging left over
    # --force never overwrites the checkpoint it exports from.
    checkpoint = make_checkpoint(out / "nasnet_a.safetensors", get_arch("nasnet-a"))
    before = checkpoint.read_bytes()
    err = bad_input(["export", "nasnet-a", "--weights", str(checkpoint), "--out", str(out),
                     "--force"], capsys)
    assert "would overwrite the checkpoint" in err and checkpoint.read_bytes() == before


def test_weights_that_do_not_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nasnet = get_arch("nasnet-a")
    # Tensors of a 1@72 network under a model card that says 1@48.
    wide = make_checkpoint(tmp_path / "wide.safetensors", nasnet, filters=72)
    state, card = load_checkpoint(wide)
    narrow = dataclasses.replace(card.architecture, filters=48,
                                 settings={**card.architecture.settings, "filters": 48})
    lying = save_state(tmp_path / "lying.safetensors", state,
                       dataclasses.replace(card, architecture=narrow))
    err = bad_input(["export", "nasnet-a", "--weights", str(lying), "--out", str(tmp_path / "o")],
                    capsys)
    assert "do not fit" in err and "shape mismatches" in err and "model card" in err
    # A checkpoint trained for another genotype.
    darts = make_checkpoint(tmp_path / "darts.safetensors", get_arch("darts-v2"))
    err = bad_input(["export", "nasnet-a", "--weights", str(darts), "--out", str(tmp_path / "o")],
                    capsys)
    assert "trained for 'darts-v2'" in err
    assert not (tmp_path / "o").exists()


class _Payload:
    """Unpickling this opens (creates) a marker file: proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_pickled_weights_are_refused_without_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_Payload(proof))).close()
    assert proof.exists()  # the payload works when something does unpickle it

    marker = tmp_path / "executed"
    raw = tmp_path / "evil.safetensors"
    raw.write_bytes(pickle.dumps({"stem.0.weight": _Payload(marker)}))
    zipped = tmp_path / "evil.pt"
    torch.save({"state_dict": _Payload(marker)}, zipped)
    exported = export_model(get_arch("nasnet-a"), tmp_path / "x", cells=1, filters=48)
    module = load_generated(Path(exported["module"]))
    for evil in (raw, zipped):
        err = bad_input(
            ["export", "nasnet-a", "--weights", str(evil), "--out", str(tmp_path / "o")], capsys
        )
        assert "safetensors" in err
        with pytest.raises(ValueError, match="not a safetensors file"):
            module.build(evil)
    assert not marker.exists()


# --- the exported module on its own ---------------------------------------------------------


def test_build_refuses_weights_that_do_not_fit(tmp_path: Path) -> None:
    result = export_model(get_arch("nasnet-a"), tmp_path / "x", cells=1, filters=48)
    module = load_generated(Path(result["module"]))
    state = {k: v.clone() for k, v in module.build().state_dict().items()}
    del state["head.4.bias"]
    state["stem.0.weight"] = torch.zeros(1, 3, 3, 3)
    state["extra"] = torch.zeros(1)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(ValueError, match="does not fit") as info:
        module.build(path)
    message = str(info.value)
    assert "1 missing tensors (first: head.4.bias)" in message
    assert "1 unexpected tensors (first: extra)" in message
    assert "1 shape mismatches (first: stem.0.weight is (1, 3, 3, 3) there" in message
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(ValueError, match="not a safetensors file"):
        module.build(path)


def test_torch_only_reader_matches_safetensors(tmp_path: Path) -> None:
    result = export_model(get_arch("nasnet-a"), tmp_path / "x", cells=1, filters=48)
    module = load_generated(Path(result["module"]))
    tensors = {
        "f32": torch.randn(3, 4),
        "f16": torch.randn(5).half(),
        "bf16": torch.randn(2, 2).bfloat16(),
        "f64": torch.randn(1, dtype=torch.float64),
        "i64_scalar": torch.tensor(7),
        "i8": torch.tensor([-3, 4], dtype=torch.int8),
        "u8": torch.tensor([255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 3),
    }
    path = tmp_path / "mixed.safetensors"
    save_file(tensors, str(path), metadata={"note": "ignored"})
    got = module.read_safetensors(path)
    reference = load_file(str(path))
    assert got.keys() == reference.keys() == tensors.keys()
    for key, value in reference.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape
        assert torch.equal(got[key], value), key


def test_module_names_are_importable_and_never_shadow() -> None:
    assert module_name("nasnet-a") == "nasnet_a"
    assert module_name("study-1:best") == "study_1_best"
    assert module_name("3cells") == "net_3cells"
    assert module_name("json") == "json_net"
    assert module_name("torch") == "torch_net"
    assert module_name("class") == "class_net"
    assert module_name("---") == "network"
