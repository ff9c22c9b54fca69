"""Data whose classes do not match the network, and files that only look like images
(issue 17, class 9): each is exit 2 with one line naming the file or the classes, before any
training, never a hang (a FIFO named .jpg would block a reader for ever) or a raw OSError.
Runs `nas train` in a subprocess with a time limit, so a regression shows as a failure,
not as a CI run that never ends."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from test_data import make_small_cifar

from workers.data import CLASSES


def _extra_class(root: Path) -> None:
    for split in ("train", "test"):
        shutil.copytree(root / split / "cat", root / split / "unicorn")


def _missing_class(root: Path) -> None:
    for split in ("train", "test"):
        shutil.rmtree(root / split / "truck")


def _first(root: Path) -> Path:
    return root / "train" / CLASSES[0]


CASES: list[tuple[str, Callable[[Path], object], str]] = [
    ("an 11th class", _extra_class, "not CIFAR-10's: unicorn"),
    ("a class missing", _missing_class, "missing: truck"),
    ("a zero-byte image", lambda r: (_first(r) / "empty.jpg").write_bytes(b""), "is empty"),
    ("a dangling symlink", lambda r: (_first(r) / "gone.jpg").symlink_to(r / "nowhere.jpg"),
     "cannot be read"),
    ("a symlink loop", lambda r: ((_first(r) / "a.jpg").symlink_to(_first(r) / "b.jpg"),
                                  (_first(r) / "b.jpg").symlink_to(_first(r) / "a.jpg")),
     "cannot be read"),
    ("a FIFO named .jpg", lambda r: os.mkfifo(_first(r) / "pipe.jpg"), "not a regular file"),
    ("a directory named .jpg", lambda r: (_first(r) / "folder.jpg").mkdir(),
     "not a regular file"),
    ("a test-split FIFO", lambda r: os.mkfifo(r / "test" / "dog" / "pipe.png"),
     "not a regular file"),
]


@pytest.mark.parametrize(("case", "spoil", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_data_is_exit_2_before_training(case: str, spoil: Callable[[Path], object],
                                            message: str, cifar_dir: Path,
                                            tmp_path: Path) -> None:
    root = make_small_cifar(cifar_dir, tmp_path / "cifar", train=3, test=1)
    spoil(root)
    env = {**os.environ, "NAS_CACHE_DIR": str(tmp_path / "cache"),
           "NAS_STORAGE": f"sqlite:///{tmp_path / 'nas.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", "nas", "train", "nasnet-a", "--preset", "cpu-quick",
         "--cells", "1", "--filters", "24", "--epochs", "1", "--max-steps", "1",
         "--data", str(root), "--out", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not list((tmp_path / "out").glob("*.safetensors"))


def test_the_imagefolder_source_names_bad_files_too(tmp_path: Path) -> None:
    """The ImageFolder source (`nas transfer`) lists class folders with the same rule."""
    from workers.imagefolder import scan_imagefolder
    from workers.source import DataError

    for split in ("train", "val"):
        (tmp_path / split / "a").mkdir(parents=True)
    (tmp_path / "train" / "a" / "x.jpg").write_bytes(b"\xff\xd8")
    os.mkfifo(tmp_path / "val" / "a" / "y.jpg")
    with pytest.raises(DataError, match="not a regular file"):
        scan_imagefolder(tmp_path)
