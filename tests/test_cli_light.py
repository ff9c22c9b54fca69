"""Commands that only read answer at once: `nas --help`, `list`, `status` and `leaderboard`
load neither torch nor ray (nor optuna), checked in a fresh interpreter through sys.modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nas.db import host_name, open_database

HEAVY = ("torch", "ray", "optuna", "timm", "torchvision")

PROBE = f"""
import json, sys
from nas.cli import main
code = main(sys.argv[1:])
print(json.dumps({{"code": code, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}),
      file=sys.stderr)
"""


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real SQLite database holding one study with no trials yet."""
    url = f"sqlite:///{tmp_path_factory.mktemp('light') / 'nas.db'}"
    db = open_database(url)
    try:
        db.create_search("light", {"preset": "cpu-quick", "sampler": "tpe"}, 0, "test", None,
                         "token", host_name(), 0)
    finally:
        db.close()
    return url


def probe(*args: str) -> tuple[int, list[str], str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parent)
    result = json.loads(done.stderr.strip().splitlines()[-1])
    return result["code"], result["heavy"], done.stdout


@pytest.mark.parametrize("args", [
    ("--help",),
    ("list", "--json"),
    ("status", "--study", "light", "--json"),
    ("leaderboard", "--study", "light", "--json"),
    ("status", "--help"),
    ("search", "--help"),
    ("train", "--help"),
], ids=lambda a: " ".join(a))
def test_read_only_commands_import_no_torch_or_ray(study_db: str, args: tuple[str, ...]) -> None:
    reads_db = args[0] in ("status", "leaderboard") and "--help" not in args
    code, heavy, out = probe(*args, *(("--storage", study_db) if reads_db else ()))
    assert code == 0, out
    assert heavy == [], f"`nas {' '.join(args)}` imported {heavy}"


def test_status_reads_the_study_from_env_storage(study_db: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`--storage` defaults to env NAS_STORAGE (one option, click's envvar)."""
    monkeypatch.setenv("NAS_STORAGE", study_db)
    done = subprocess.run([sys.executable, "-m", "nas", "status", "--json"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["study"] == "light"


def test_the_distribution_name_is_not_the_unrelated_pypi_nas() -> None:
    """PyPI's `nas` is another project; ours installs as nas-cells and `nas --version` says so."""
    from importlib.metadata import version

    from search_spaces import DISTRIBUTION, package_version

    assert DISTRIBUTION == "nas-cells"
    assert package_version() == version("nas-cells")
    done = subprocess.run([sys.executable, "-m", "nas", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and package_version() in done.stdout
