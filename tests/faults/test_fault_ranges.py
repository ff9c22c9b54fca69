"""Ranges, not only types (issue 17, class 7): every numeric setting has a range enforced
where the config is read, so a value outside it is exit 2 with one line naming the setting,
and the study is never created. Seeds fit the 32-bit database column; a key given twice in a
config file is refused instead of silently keeping the last one."""

from __future__ import annotations

from pathlib import Path

import pytest
from faultkit import nothing_written, run_bad_input

from nas.cli import main

HUGE_SEED = str(2**32)

# (case id, config file text or None, extra command line, a piece of the one-line message)
CASES = [
    ("seed flag 2^32", None, ["search", "--seed", HUGE_SEED], "--seed"),
    ("seed in config 2^32", f"seed: {HUGE_SEED}\n", [], "seed"),
    ("seed negative", "seed: -1\n", [], "seed"),
    ("train seed flag 2^32", None, ["train", "nasnet-a", "--seed", HUGE_SEED], "--seed"),
    ("baselines seed 2^40", None, ["baselines", "--seed", str(2**40)], "--seed"),
    ("trials boolean", "trials: true\n", [], "trials"),
    ("trials float", "trials: 2.5\n", [], "trials"),
    ("population boolean", "population: yes\n", [], "population"),
    ("timeout nan", "timeout: .nan\n", [], "timeout"),
    ("cpus per trial inf", "cpus_per_trial: .inf\n", [], "cpus_per_trial"),
    ("gpus per trial huge", "gpus_per_trial: 100000\n", [], "gpus_per_trial"),
    ("train images above the split", "train_images: 50000\n", [], "train_images"),
    ("duplicate yaml key", "trials: 3\nsampler: tpe\ntrials: 4\n", [], "given twice"),
    ("duplicate nested yaml key", "train:\n  epochs: 1\n  epochs: 2\n", [], "given twice"),
    ("study name newline", 'study: "abc\\n"\n', [], "may only hold letters"),
    ("network classes not cifar", "network:\n  num_classes: 5\n", [], "num_classes"),
    ("network layout imagenet", "network:\n  layout: imagenet\n", [], "layout"),
    ("network stem negative", "network:\n  stem_multiplier: -1\n", [], "stem_multiplier"),
    ("network drop path nan", "network:\n  drop_path: .nan\n", [], "drop_path"),
    ("train eval batch zero", "train:\n  eval_batch_size: 0\n", [], "eval_batch_size"),
    ("train momentum nan", "train:\n  momentum: .nan\n", [], "momentum"),
    ("train momentum one", "train:\n  momentum: 1.0\n", [], "momentum"),
    ("train weight decay inf", "train:\n  weight_decay: .inf\n", [], "weight_decay"),
    ("train cutout negative", "train:\n  cutout: -5\n", [], "cutout"),
    ("train threads zero", "train:\n  threads: 0\n", [], "threads"),
    ("train device banana", "train:\n  device: banana\n", [], "banana"),
    ("train seed 2^32", f"train:\n  seed: {HUGE_SEED}\n", [], "seed"),
    ("train grad clip nan", "train:\n  grad_clip: .nan\n", [], "grad_clip"),
]


@pytest.mark.parametrize(("case", "text", "args", "message"), CASES, ids=[c[0] for c in CASES])
def test_out_of_range_is_exit_2_and_creates_no_study(
    case: str, text: str | None, args: list[str], message: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    argv = list(args)
    if text is not None:
        (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
        argv = ["search", "--config", str(tmp_path / "config.yaml"), *argv]
    run_bad_input(argv, message, tmp_path, tmp_path / "no-data", monkeypatch, capsys)


def test_duplicate_keys_in_json_are_refused(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"trials": 3, "trials": 4}', encoding="utf-8")
    assert main(["search", "--config", str(path), "--storage",
                 f"sqlite:///{tmp_path / 'nas.db'}"]) == 2
    assert "given twice" in capsys.readouterr().err
    nothing_written(tmp_path / "nas.db")
