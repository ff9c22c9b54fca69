"""Secrets and exposure (guarantee 7 of docs/reliability.md).

A search and a final training run against PostgreSQL with a password in the URL; then
every place the password could leak is read: stdout and stderr of each command, every file
Ray wrote for the run (logs, session files, spilled objects), every text column of every
table (ours and Optuna's), and the checkpoint. The local Ray dashboard must listen on
127.0.0.1 only and refuse requests without its token. Weights load through safetensors
only: a crafted pickle handed over as weights is refused without being run.

Malformed URLs (issue 17, class 1): every command that takes `--storage` / NAS_STORAGE,
enumerated from the click group, is run over a table of URLs that do not parse or parse
wrongly, and stdout, stderr and every log record are searched for the password.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from conftest import _postgres_database
from faultkit import record, write_config
from sqlalchemy import create_engine, inspect, text

from nas.cli import cli, main

PASSWORD = "Pw-d0-not-LEAK-7f3a"


@pytest.fixture
def secret_url() -> Iterator[str]:
    """A fresh database, reached with a password in the URL (the server trusts 127.0.0.1,
    so any password gets in: what matters is where the program copies it)."""
    for url in _postgres_database():
        yield url.replace("postgres@", f"postgres:{PASSWORD}@")


def _nas(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nas", *args], env=env, capture_output=True,
                          text=True, timeout=600)


def _files_holding(root: Path, needle: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


def _rows_holding(url: str, needle: str) -> list[str]:
    engine = create_engine(url.replace(f":{PASSWORD}", ""))
    found = []
    try:
        with engine.connect() as c:
            for table in inspect(c).get_table_names():
                for row in c.execute(text(f'SELECT * FROM "{table}"')):
                    if needle in " ".join(str(v) for v in row):
                        found.append(table)
    finally:
        engine.dispose()
    return found


@pytest.mark.slow
@pytest.mark.postgres
def test_database_password_never_leaks(secret_url: str, cifar_dir: Path,
                                       tmp_path: Path) -> None:
    ray_tmp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # short: Ray's socket paths
    env = {**os.environ, "NAS_STORAGE": secret_url, "RAY_TMPDIR": str(ray_tmp),
           "NAS_FAULT_STUB_TRAIN": "0.1"}
    config = write_config(tmp_path / "search.json")
    try:
        runs = [
            _nas("search", "--study", "sec", "--trials", "3", "--preset", "cpu-quick",
                 "--data", str(cifar_dir), "--config", str(config), env=env),
            _nas("status", "--study", "sec", env=env),
            _nas("leaderboard", "--study", "sec", "--json", env=env),
            _nas("train", "sec:best", "--preset", "cpu-quick", "--max-steps", "2",
                 "--data", str(cifar_dir), "--out", str(tmp_path / "ckpt"),
                 "--storage", secret_url, env=env),
            _nas("compare", "--json", env=env),
        ]
        for run in runs:
            assert run.returncode == 0, run.stderr[-2000:]
        # an exception on the way out: a server that does not answer
        bad = _nas("search", "--storage", secret_url.replace(":5432/", ":1/"), env=env)
        assert bad.returncode == 2
        printed = [r.stdout + r.stderr for r in [*runs, bad]]
        assert not [p for p in printed if PASSWORD in p]
        assert any("***" in p for p in printed)  # the URL is shown, redacted
        ray_files = [p for p in ray_tmp.rglob("*") if p.is_file()]
        assert ray_files, "Ray wrote nothing under RAY_TMPDIR: the check would be empty"
        assert _files_holding(ray_tmp, PASSWORD.encode()) == []
        checkpoints = list((tmp_path / "ckpt").glob("*"))
        assert checkpoints and _files_holding(tmp_path / "ckpt", PASSWORD.encode()) == []
        assert _rows_holding(secret_url, PASSWORD) == []
        assert _rows_holding(secret_url, "sec")  # the dump did see the study
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    record("secrets", {"commands_checked": len(runs) + 1, "ray_files_checked": len(ray_files),
                       "checkpoint_files_checked": len(checkpoints), "leaks": 0})


def _listening(port: int) -> list[str]:
    """Local addresses listening on `port` (from /proc/net/tcp and tcp6)."""
    found = []
    for name in ("tcp", "tcp6"):
        path = Path(f"/proc/net/{name}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, state = fields[1], fields[3]
            host, port_hex = address.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.append(host)
    return found


def test_dashboard_is_local_and_needs_its_token(ray_cluster: None) -> None:
    from nas.search.dispatch import dashboard_url

    url = dashboard_url()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    hosts = _listening(port)
    assert hosts and all(h == "0100007F" for h in hosts), hosts  # 127.0.0.1, nothing else
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{url}/api/v0/tasks?limit=1", timeout=10)
    assert refused.value.code in (401, 403)
    record("dashboard", {"listens_on": "127.0.0.1", "without_token": refused.value.code})


class _Payload:
    """Unpickling this runs a shell command: what a malicious weights file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("name", ["evil.safetensors", "evil.pt", "evil.pth"])
def test_pickled_weights_are_refused_unrun(name: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    weights = tmp_path / name
    weights.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    code = main(["export", "nasnet-a", "--weights", str(weights), "--out",
                 str(tmp_path / "out")])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and name in err
    assert not marker.exists(), "the pickle was executed"
    assert not (tmp_path / "out").exists()


# -- malformed storage URLs (issue 17, class 1) -----------------------------------------------

SECRET = "Sekr1tPw9"
# (name, URL, the texts that must not appear): every piece of the password an unencoded
# delimiter could scatter into host, port or database. 127.0.0.1:1 refuses at once; the
# variants that reach the real server name a role or database that does not exist.
MALFORMED = [
    ("missing-colon", f"postgresql//u:{SECRET}@127.0.0.1:5432/test", [SECRET]),
    ("query-password", f"postgresql://u@127.0.0.1:1/db?password={SECRET}", [SECRET]),
    ("amp-password", f"postgresql://u@127.0.0.1:1/db?sslmode=disable&password={SECRET}",
     [SECRET]),
    ("unencoded-at", "postgresql://u:Sekr@1tPw9@127.0.0.1:1/db", ["Sekr@1tPw9", "1tPw9"]),
    ("unencoded-colon", "postgresql://u:Sekr:1tPw9@127.0.0.1:1/db", ["Sekr:1tPw9", "1tPw9"]),
    ("unencoded-slash", "postgresql://u:Sekr/1tPw9@127.0.0.1:1/db", ["Sekr/1tPw9", "1tPw9"]),
    ("tail-into-port", "postgresql://u:Sekr@1tPw9:x@127.0.0.1/db", ["1tPw9:x", "1tPw9"]),
    ("password-in-port", f"postgresql://u@127.0.0.1:{SECRET}/db", [SECRET]),
    ("single-slash-driver", f"postgresql+psycopg:/u:{SECRET}@127.0.0.1:1/db", [SECRET]),
    ("no-scheme-slashes", f"postgresql:u:{SECRET}@127.0.0.1:1/db", [SECRET]),
    ("userinfo-no-host", f"postgresql://u:{SECRET}@/db", [SECRET]),
    ("percent-encoded", "postgresql://u:Sekr%401tPw9@127.0.0.1:1/db",
     ["Sekr%401tPw9", "Sekr@1tPw9", "1tPw9"]),
    ("password-is-database", f"postgresql://postgres:{SECRET}@127.0.0.1:5432/{SECRET}",
     [SECRET]),
    ("mixed-case-scheme", f"PostgreSQL://u:{SECRET}@127.0.0.1:1/db", [SECRET]),
    ("fragment", f"postgresql://u:{SECRET}@127.0.0.1:1/db#frag", [SECRET]),
    ("password-in-fragment", f"postgresql://u@127.0.0.1:1/db#password={SECRET}", [SECRET]),
    ("sqlite-query", f"sqlite:////no-such-dir-nas/x.db?password={SECRET}", [SECRET]),
]
# The arguments that make each command use its database before anything else: a STUDY:N
# REF is resolved from the database, --attempts 1 keeps wait-db to one try.
ARGS = {"inspect": ["x:1"], "show": ["x:1"], "export": ["x:1", "--out", "{tmp}/out"],
        "train": ["x:1"], "transfer": ["x:1"], "bench train": ["x:1"],
        "baselines": ["--width-rule", "match=x:1"], "wait-db": ["--attempts", "1"]}


def storage_commands(group: click.Group = cli, prefix: str = "") -> list[str]:
    """Every command of the CLI with a `storage` parameter (so a new one cannot be missed)."""
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += storage_commands(command, f"{prefix}{name} ")
        elif any(p.name == "storage" for p in command.params):
            found.append(prefix + name)
    return found


def test_every_storage_command_is_swept() -> None:
    commands = storage_commands()
    assert {"search", "status", "leaderboard", "compare", "train", "wait-db"} <= set(commands)
    assert set(ARGS) <= set(commands)


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["flag", "env"])
@pytest.mark.parametrize(("name", "url", "hidden"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_url_never_shows_its_password(
    name: str, url: str, hidden: list[str], how: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("NAS_DB_RETRY_S", "0")
    monkeypatch.delenv("NAS_STORAGE", raising=False)
    monkeypatch.chdir(tmp_path)
    caplog.set_level("DEBUG")
    outcomes = {}
    for command in storage_commands():
        args = [*command.split(), *(a.format(tmp=tmp_path) for a in ARGS.get(command, []))]
        if how == "flag":
            args += ["--storage", url]
        else:
            monkeypatch.setenv("NAS_STORAGE", url)
        code = main(args)
        out, err = capsys.readouterr()
        printed = out + err + "\n".join(r.getMessage() for r in caplog.records)
        caplog.clear()
        outcomes[command] = code
        leaked = [h for h in hidden if h in printed]
        assert not leaked, f"nas {command} with {name}: {printed[-600:]}"
        if not (command == "wait-db" and url.startswith("sqlite")):  # no server to wait for
            assert code != 0 and err.strip(), f"nas {command} with {name} did not refuse it"
        assert "Traceback" not in printed
    assert not list(tmp_path.iterdir()), "a command wrote something for a URL it refused"
    record(f"malformed-url-{name}-{how}", {"commands": len(outcomes),
                                          "exit_codes": sorted(set(outcomes.values()))})
