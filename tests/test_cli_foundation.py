"""`nas list / inspect / show`: the command contract of DESIGN §4 and exit code 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.cli import main
from search_spaces import PUBLISHED, Genotype


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "--json")
    rows = json.loads(out)
    assert code == 0
    assert {"name": "nasnet-a", "kind": "genotype"} in rows
    assert {"name": "mobilenet-v1", "kind": "baseline"} in rows
    assert len(rows) == 14


def test_inspect_json_keys_and_figures(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "nasnet-a", "--layout", "imagenet", "--cells", "4",
                       "--filters", "1056", "--image-size", "224", "--classes", "1000", "--json")
    data = json.loads(out)
    assert code == 0
    assert {"arch", "layout", "cells", "filters", "image_size", "num_classes", "params",
            "mult_adds"} <= set(data)
    assert (data["cells"], data["filters"], data["image_size"]) == (4, 1056, 224)
    assert abs(data["params"] / 5.3e6 - 1) < 0.02
    assert abs(data["mult_adds"] / 564e6 - 1) < 0.03


def test_inspect_baseline_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "resnet18", "--layout", "imagenet")
    assert code == 0 and "11,689,512" in out


def test_show_json_round_trips_and_draws(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    picture = tmp_path / "cells.png"
    code, out, _ = run(capsys, "show", "amoebanet-a", "--json", "--diagram", str(picture))
    assert code == 0
    assert Genotype.from_dict(json.loads(out)) == PUBLISHED["amoebanet-a"]
    data = picture.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000
    assert [p.name for p in tmp_path.iterdir()] == ["cells.png"]  # no temp file left


def test_show_reads_a_genotype_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "cell.json"
    path.write_text(PUBLISHED["darts-v2"].to_json())
    code, out, _ = run(capsys, "show", str(path))
    assert code == 0 and "Normal cell" in out and "dil_sep_conv_3x3" in out
    code, out, _ = run(capsys, "inspect", str(path), "--json")
    assert code == 0 and json.loads(out)["key"] == PUBLISHED["darts-v2"].key()


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "malformed.json": "{ not json",
        "invalid.json": json.dumps({"normal": {"blocks": [{"inputs": [0, 9], "ops": [
            "identity", "identity"], "combine": "add"}]}, "reduce": {"blocks": []}}),
        "unknown-op.json": PUBLISHED["nasnet-a"].to_json().replace("sep_conv_7x7", "warp_9x9"),
        "binary.json": "\x00\x01\xff",
    }
    paths = {}
    for name, text in files.items():
        paths[name] = tmp_path / name
        paths[name].write_text(text, encoding="latin-1")
    return paths


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inspect", "no-such-net"], "unknown architecture 'no-such-net'"),
        (["inspect", "nasnet-a", "--cells", "-1"], "--cells must be at least 0"),
        (["inspect", "nasnet-a", "--layout", "imagenet", "--image-size", "7"], "too small"),
        (["inspect", "resnet18", "--cells", "2"], "baseline"),
        (["inspect", "inception-resnet-v2", "--width", "0.3"], "breaks a residual"),
        (["inspect", "nasnet-a", "--layout", "mars"], "Invalid value for '--layout'"),
        (["show", "resnet18"], "is a baseline"),
        (["show", "missing.json"], "does not exist"),
        (["show", "nasnet-a", "--diagram", "cells.pdf"], "use a .png or .svg"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], args: list[str],
                                         message: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["malformed.json", "invalid.json", "unknown-op.json",
                                  "binary.json"])
def test_bad_genotype_files_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                   name: str) -> None:
    path = _bad_files(tmp_path)[name]
    code, _, err = run(capsys, "inspect", str(path))
    assert code == 2 and err.count("\n") == 1 and str(path) in err


def test_huge_genotype_file_is_refused_unread(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    path.write_text(" " * 2_000_000)
    code, _, err = run(capsys, "show", str(path))
    assert code == 2 and "at most" in err
