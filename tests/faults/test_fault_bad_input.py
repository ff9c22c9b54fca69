"""Bad input, table-driven (guarantee 6 of docs/reliability.md): every case exits 2 with one
line on stderr that says what is wrong, prints no traceback, and writes nothing to the
database (the SQLite file is not even created, or holds no search, trial or model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faultkit import record, run_bad_input

from search_spaces import PUBLISHED

NASNET = json.loads(PUBLISHED["nasnet-a"].to_json())


def _genotype(**normal_block: object) -> str:
    """NASNet-A with its first normal block changed."""
    data = json.loads(json.dumps(NASNET))
    data["normal"]["blocks"][0].update(normal_block)
    return json.dumps(data)


FILES: dict[str, str | bytes] = {
    # search configs
    "broken.yaml": "trials: [1, 2\n",
    "broken.json": '{"trials": 3,',
    "unknown-key.yaml": "sampler: tpe\nbatch_size: 64\n",
    "wrong-type.yaml": "trials: many\n",
    "out-of-range.yaml": "trials: -4\n",
    "nested-unknown.yaml": "train:\n  warp_speed: 9\n",
    "nested-type.yaml": "train:\n  epochs: lots\n",
    "network-range.yaml": "network:\n  cells: -1\n",
    "list.yaml": "- trials\n- 3\n",
    "non-ascii.yaml": "tríals: 3\n",
    "latin1.yaml": "sampler: tp\xe9\n".encode("latin-1"),
    "alias-bomb.yaml": "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c]\n",
    "huge.yaml": "# " + "x" * 2_000_000 + "\n",
    # genotypes
    "cycle.json": _genotype(inputs=[0, 2]),  # block 0 (hidden state 2) reads itself
    "forward.json": _genotype(inputs=[0, 5]),  # a later block's output
    "huge-index.json": _genotype(inputs=[0, 10**18]),
    "negative.json": _genotype(inputs=[-1, 0]),
    "unknown-op.json": _genotype(ops=["warp_drive", "identity"]),
    "wrong-length.json": _genotype(ops=["identity", "identity", "identity"]),
    "non-ascii-op.json": _genotype(ops=["sep_conv_3×3", "identity"]),
    "no-blocks.json": json.dumps({"normal": {"blocks": []}, "reduce": NASNET["reduce"]}),
    "not-a-genotype.json": "[1, 2, 3]",
    "binary.json": b"\x00\x01\xff\xfe",
    "huge.json": " " * 2_000_000,
    "huge-int.json": _genotype(inputs=[0, 0]).replace("[0, 0]", "[0, " + "9" * 5000 + "]", 1),
}

# (case id, command line, a piece of the one-line message)
CASES = [
    ("yaml malformed", ["search", "--config", "{f}/broken.yaml"], "not valid YAML/JSON"),
    ("json malformed", ["search", "--config", "{f}/broken.json"], "not valid YAML/JSON"),
    ("unknown key", ["search", "--config", "{f}/unknown-key.yaml"], "batch_size: unknown key"),
    ("wrong type", ["search", "--config", "{f}/wrong-type.yaml"], "trials"),
    ("out of range", ["search", "--config", "{f}/out-of-range.yaml"], "trials"),
    ("nested unknown key", ["search", "--config", "{f}/nested-unknown.yaml"], "warp_speed"),
    ("nested wrong type", ["search", "--config", "{f}/nested-type.yaml"], "epochs"),
    ("network out of range", ["search", "--config", "{f}/network-range.yaml"], "cells"),
    ("config not a mapping", ["search", "--config", "{f}/list.yaml"], "must hold a mapping"),
    ("non-ascii key", ["search", "--config", "{f}/non-ascii.yaml"], "unknown key"),
    ("not utf-8", ["search", "--config", "{f}/latin1.yaml"], "cannot read config file"),
    ("yaml alias bomb", ["search", "--config", "{f}/alias-bomb.yaml"], "unknown key"),
    ("huge config", ["search", "--config", "{f}/huge.yaml"], "at most 1,000,000"),
    ("missing config", ["search", "--config", "{f}/nope.yaml"], "nope.yaml"),
    ("bad flag value", ["search", "--trials", "0"], "trials"),
    ("bad study name", ["search", "--study", "a b;c"], "may only hold letters"),
    ("genotype cycle", ["train", "{f}/cycle.json"], "cycle.json"),
    ("genotype forward ref", ["inspect", "{f}/forward.json"], "forward.json"),
    ("genotype huge index", ["export", "{f}/huge-index.json", "--out", "{f}/out"],
     "huge-index.json"),
    ("genotype negative index", ["show", "{f}/negative.json"], "negative.json"),
    ("genotype unknown op", ["train", "{f}/unknown-op.json"], "warp_drive"),
    ("genotype wrong length", ["inspect", "{f}/wrong-length.json"], "wrong-length.json"),
    ("genotype non-ascii op", ["inspect", "{f}/non-ascii-op.json"], "non-ascii-op.json"),
    ("genotype no blocks", ["inspect", "{f}/no-blocks.json"], "no-blocks.json"),
    ("genotype not an object", ["inspect", "{f}/not-a-genotype.json"], "not-a-genotype.json"),
    ("genotype binary", ["train", "{f}/binary.json"], "binary.json"),
    ("genotype huge file", ["export", "{f}/huge.json", "--out", "{f}/out"], "at most"),
    ("genotype 5000-digit integer", ["inspect", "{f}/huge-int.json"], "too long"),
    ("unknown ref", ["train", "nasnet-z"], "unknown architecture"),
    ("ref of 300 characters", ["inspect", "a" * 300], "(300 characters)"),
    ("ref json name too long", ["show", "x" * 300 + ".json"], "File name too long"),
    ("ref study trial of 5000 digits", ["inspect", "s:" + "9" * 5000], "5,002 characters"),
    ("ref with a NUL", ["inspect", "nasnet-a\0"], "not a name"),
    ("study name ends with newline", ["search", "--study", "abc\n"], "may only hold letters"),
    ("unknown ref export", ["export", "resnet-1000", "--out", "{f}/out"], "unknown architecture"),
    ("unknown ref transfer", ["transfer", "vgg-99", "--data", "{f}"], "unknown architecture"),
    ("unknown study", ["train", "nostudy:best"], "run `nas search` first"),
    ("unknown trial", ["inspect", "s:99999"], ""),
    ("storage not a url", ["leaderboard", "--storage", "not a url"], "not a database URL"),
    ("storage bad scheme", ["status", "--storage", "mongodb://x/y"], ""),
    ("storage missing dir", ["search", "--storage", "sqlite:////nonexistent/dir/nas.db"],
     "does not exist"),
    ("storage unreachable", ["search", "--storage",
                             "postgresql+psycopg://u:pw-Secret-42@127.0.0.1:1/nas"], "127.0.0.1"),
    ("data missing", ["search", "--data", "/nonexistent/cifar"], "not a directory"),
    ("data empty", ["train", "nasnet-a", "--data", "{f}/empty"], "empty"),
    ("imagefolder without val", ["transfer", "nasnet-a", "--data", "{f}/noval"], "val"),
    ("epochs zero", ["train", "nasnet-a", "--epochs", "0"], "--epochs"),
    ("time budget negative", ["train", "nasnet-a", "--time-budget", "-5"], "--time-budget"),
    ("workers zero", ["transfer", "nasnet-a", "--data", "{f}/noval", "--workers", "0"],
     "workers"),
    ("gpus absent", ["transfer", "nasnet-a", "--data", "{f}/noval", "--gpus-per-worker", "1"],
     "GPU"),
    ("weights not safetensors", ["export", "nasnet-a", "--weights", "{f}/binary.json",
                                 "--out", "{f}/out"], "binary.json"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    for name, content in FILES.items():
        path = root / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    (root / "empty").mkdir()
    (root / "noval" / "train" / "a").mkdir(parents=True)
    return root


@pytest.mark.parametrize(("case", "args", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    case: str, args: list[str], message: str, files: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [a.replace("{f}", str(files)) for a in args]
    err = run_bad_input(argv, message, tmp_path, files / "empty", monkeypatch, capsys)
    assert "pw-Secret-42" not in err
    assert not (files / "out").exists(), "an export wrote files for bad input"


def test_the_table_covers_every_kind_of_bad_input() -> None:
    kinds = {"config": 0, "genotype": 0, "ref": 0, "storage": 0, "data": 0}
    for case, _, _ in CASES:
        for kind in kinds:
            if kind in case or (kind == "config" and case.startswith(("yaml", "json"))):
                kinds[kind] += 1
    assert all(kinds.values()), kinds
    record("bad input", {"cases": len(CASES), "by_kind": kinds})
