"""`nas report`: the page of a tiny real study (a real 2-trial search through Ray, a real
`nas train` of its best cell), opened in headless Chromium: no console errors, one diagram
per leaderboard row, everything inline; bad input is exit 2 with one line; text from the
database is escaped."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from faults.faultkit import write_config
from test_data import make_small_cifar

from nas.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]
CONSOLE_ERROR = re.compile(r"Uncaught|CONSOLE.*(error|Error)|Failed to load resource|"
                           r"ERR_(FILE|NAME|INTERNET|CONNECTION)")


def open_in_chromium(page: Path, tmp: Path) -> tuple[str, list[str]]:
    """The DOM after the page loaded, and the console / load error lines Chromium logged."""
    assert CHROMIUM is not None
    profile = tmp / f"profile-{page.stem}"
    profile.mkdir()
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=True)
    errors = [line for line in done.stderr.splitlines() if CONSOLE_ERROR.search(line)]
    return done.stdout, errors


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, ray_cluster: None,
          cifar_dir: Path) -> dict[str, Any]:
    """A 2-trial search on real CIFAR-10 images, then its best cell trained by `nas train`."""
    base = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{base / 'nas.db'}"
    config = write_config(base / "tiny.json")
    assert main(["search", "--study", "rep", "--trials", "2", "--preset", "cpu-quick",
                 "--data", str(cifar_dir), "--pruner", "none", "--sampler", "random",
                 "--config", str(config), "--storage", url, "--json"]) == 0
    small = make_small_cifar(cifar_dir, base / "cifar", train=8, test=4)
    assert main(["train", "rep:best", "--preset", "cpu-quick", "--cells", "1", "--filters", "24",
                 "--epochs", "1", "--subset", "64", "--max-steps", "1", "--batch-size", "32",
                 "--data", str(small), "--out", str(base / "ck"), "--storage", url,
                 "--json"]) == 0
    assert main(["leaderboard", "--study", "rep", "--storage", url, "--json"]) == 0
    return {"url": url, "base": base}


def test_report_opens_in_chromium_with_every_diagram(
    study: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    out = tmp_path / "report.html"
    assert main(["report", "--study", "rep", "--storage", study["url"], "--out", str(out)]) == 0
    assert f"written to {out}" in capsys.readouterr().out
    assert main(["leaderboard", "--study", "rep", "--storage", study["url"], "--json"]) == 0
    board = json.loads(capsys.readouterr().out)
    text = out.read_text()
    assert "Study rep" in text and "Trained models" in text
    assert not re.search(r"(src|href)=\"?(https?:)?//", text), "the page must need no network"
    assert not list(tmp_path.glob(".report-*")), "the temp file was renamed"
    drawn = [r for r in board[:5] if r["genotype"] is not None]
    assert len(drawn) >= 1 and text.count('class="cell-diagram"') == len(drawn)
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    dom, errors = open_in_chromium(out, tmp_path)
    assert errors == []
    assert dom.count('class="cell-diagram"') == len(drawn)
    # the diagrams, the best-so-far curve, the comparison plot: all inline SVG
    assert dom.count("<svg") == len(drawn) + 2
    for row in drawn:
        assert f"trial {row['trial']} · {row['state']}" in dom


def test_the_console_check_sees_a_broken_page(tmp_path: Path) -> None:
    """The check above would notice: a page with a script error is reported."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><p>x</p><script>notAFunction();</script>"
                    "</body></html>")
    _, errors = open_in_chromium(page, tmp_path)
    assert errors and "notAFunction" in "\n".join(errors)


def test_text_from_the_database_is_escaped(study: dict[str, Any], tmp_path: Path) -> None:
    """A config value with markup in it (a YAML file may hold anything) comes out as text."""
    from nas.db import open_database
    from nas.results.report import render_report

    db = open_database(study["url"], create=False)
    try:
        found = db.search("rep")
        assert found is not None
        config = {**found.config, "note": "<script>alert(1)</script>"}
        found = dataclasses.replace(found, config=config)
        page = render_report(db, found, study["url"])
    finally:
        db.close()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize("args, name, message", [
    (["--study", "nope"], "r.html", "no study 'nope'"),
    ([], "not-a-dir/r.html", "directory"),
    ([], "r.pdf", "use a .html file name"),
])
def test_bad_input_is_exit_2_with_one_line(
    study: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    args: list[str], name: str, message: str,
) -> None:
    capsys.readouterr()
    out = tmp_path / name
    assert main(["report", *args, "--storage", study["url"], "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not out.exists()


def test_no_database_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'missing.db'}"
    assert main(["report", "--storage", url, "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "missing.db").exists()
