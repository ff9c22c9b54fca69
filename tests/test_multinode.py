"""The docker-compose topology without Docker: a Ray head and a second worker node started
as local processes with `ray start` (own temp dirs, loopback addresses only, one CPU each,
token auth as in compose), a search driven against them with `--ray-address` and PostgreSQL
storage, and checks that trials ran on both nodes and landed in the database.

The nodes are stopped by process id, never with `ray stop`: that command ends every Ray
process on the machine, other people's clusters included.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import _postgres_database

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's `ray` and `nas`
# Loopback addresses for the two nodes. Not 127.0.0.1: `ray start` replaces that with the
# machine's network address so that other machines can reach the node; 127.0.0.2 and
# 127.0.0.3 are loopback too (127.0.0.0/8), so nothing leaves the machine.
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(host: str, port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"nothing listens on {host}:{port}")


@dataclass
class Node:
    """One `ray start --block` process (its own session, so its children are findable)."""

    name: str
    temp_dir: Path
    log: Path
    proc: subprocess.Popen[bytes]
    agent_port: int

    def stop(self) -> None:
        """SIGTERM makes `ray start --block` shut its node down; then end stragglers by pid."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        deadline = time.monotonic() + 15
        while (left := self.leftovers()) and time.monotonic() < deadline:
            for pid in left:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)

    def leftovers(self) -> list[int]:
        """Pids of this node's processes still alive: their command line names its temp dir."""
        marker = str(self.temp_dir).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker in cmdline and state != "Z":
                found.append(int(entry.name))
        return found


@dataclass
class Cluster:
    address: str
    dashboard: str
    env: dict[str, str]
    token: str
    head_id: str = ""
    worker_id: str = ""
    nodes: list[Node] = field(default_factory=list)

    def python(self, code: str, timeout: float = 300) -> object:
        """Run `code` as a Ray driver of this cluster in a fresh process; its stdout is JSON.

        A separate process, because this pytest process may already be a driver of
        another (local) cluster, and Ray allows one per process.
        """
        result = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True,
                                text=True, timeout=timeout, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    def logs(self) -> str:
        return "\n".join(f"--- {n.name}\n{n.log.read_text(errors='replace')[-3000:]}"
                         for n in self.nodes if n.log.exists())


NODES = """
import json, ray
ray.init(address={address!r}, logging_level="ERROR", log_to_driver=False)
print(json.dumps([{{"id": n["NodeID"], "alive": n["Alive"], "cpus": n["Resources"].get("CPU"),
                    "ip": n["NodeManagerAddress"],
                    "head": "node:__internal_head__" in n["Resources"]}} for n in ray.nodes()]))
"""


def _start_node(name: str, ip: str, args: list[str], env: dict[str, str]) -> Node:
    # Ray's Unix socket paths are length-limited: a short dir directly under /tmp.
    temp_dir = Path(tempfile.mkdtemp(prefix=f"ray{name[0]}-", dir="/tmp"))
    agent_port = _free_port()
    log = temp_dir.with_suffix(".log")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "ray"), "start", "--block", f"--temp-dir={temp_dir}",
             f"--node-ip-address={ip}", "--num-cpus=1", "--num-gpus=0",
             "--object-store-memory=1000000000", f"--dashboard-agent-listen-port={agent_port}",
             "--disable-usage-stats", *args],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return Node(name, temp_dir, log, proc, agent_port)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head and a worker node, one CPU each, token auth on; always stopped afterwards."""
    token = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_USAGE_STATS_ENABLED="0",
               PATH=f"{BIN}:{env.get('PATH', '')}")
    gcs, dash = _free_port(), _free_port()
    c = Cluster(address=f"{HEAD_IP}:{gcs}", dashboard=f"http://127.0.0.1:{dash}", env=env,
                token=token)
    try:
        c.nodes.append(_start_node("head", HEAD_IP, [
            "--head", f"--port={gcs}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
            f"--ray-client-server-port={_free_port()}"], env))
        deadline = time.monotonic() + 180
        _wait_for_port(HEAD_IP, gcs, deadline)
        c.nodes.append(_start_node("worker", WORKER_IP, [f"--address={c.address}"], env))
        while True:
            nodes = c.python(NODES.format(address=c.address))
            alive = [n for n in nodes if n["alive"]]
            if len(alive) == 2:
                break
            assert time.monotonic() < deadline, f"nodes: {nodes}\n{c.logs()}"
            time.sleep(2)
        c.head_id = next(n["id"] for n in alive if n["head"])
        c.worker_id = next(n["id"] for n in alive if not n["head"])
        assert all(n["cpus"] == 1.0 for n in alive), alive
        assert {n["ip"] for n in alive} == {HEAD_IP, WORKER_IP}, alive
        yield c
    finally:
        for node in reversed(c.nodes):
            node.stop()
        for node in c.nodes:
            assert not node.leftovers(), f"{node.name} left processes behind"
            shutil.rmtree(node.temp_dir, ignore_errors=True)
            node.log.unlink(missing_ok=True)


def _http(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_dashboard_needs_the_token_and_the_healthchecks_do_not(cluster: Cluster) -> None:
    """What docker-compose.yml relies on: its healthchecks answer without the token, the
    dashboard's API does not."""
    assert _http(f"{cluster.dashboard}/api/gcs_healthz") == 200
    assert _http(f"{cluster.dashboard}/api/v0/nodes") == 401
    assert _http(f"{cluster.dashboard}/api/v0/nodes", token="wrong") == 403
    assert _http(f"{cluster.dashboard}/api/v0/nodes", token=cluster.token) == 200
    worker = cluster.nodes[1]
    assert _http(f"http://{WORKER_IP}:{worker.agent_port}/api/local_raylet_healthz") == 200


AFFINITY = """
import json, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as Affinity
ray.init(address={address!r}, logging_level="ERROR", log_to_driver=False)

@ray.remote(num_cpus=1)
def where():
    return ray.get_runtime_context().get_node_id()

refs = [where.options(scheduling_strategy=Affinity(node, soft=False)).remote()
        for node in ({head!r}, {worker!r})]
print(json.dumps(ray.get(refs, timeout=180)))
"""


def test_tasks_run_on_the_worker_node(cluster: Cluster) -> None:
    code = AFFINITY.format(address=cluster.address, head=cluster.head_id,
                           worker=cluster.worker_id)
    assert cluster.python(code) == [cluster.head_id, cluster.worker_id]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, dropped at the end."""
    yield from _postgres_database()


TASK_NODES = """
import json, time
from ray.util.state import list_tasks
for _ in range(30):  # task events reach the GCS within a few seconds
    rows = [r for name in {names!r} for r in list_tasks(
        address={dashboard!r}, filters=[("name", "=", name)], limit=100,
        raise_on_missing_output=False)]
    done = {{r.name: r.node_id for r in rows if r.state == "FINISHED" and r.node_id}}
    if len(done) == len({names!r}):
        break
    time.sleep(2)
print(json.dumps(done))
"""


def test_search_spreads_trials_over_both_nodes(cluster: Cluster, pg_url: str,
                                               cifar_dir: Path, tmp_path: Path) -> None:
    study = f"mn{uuid.uuid4().hex[:8]}"
    env = {**cluster.env, "NAS_STORAGE": ""}
    # cpu-quick on small real subsets and one short epoch: the test is about where trials
    # run and what is stored, not about accuracy; minutes on 2 shared cores.
    config = tmp_path / "search.json"
    config.write_text(json.dumps({
        "train_images": 1024, "val_images": 512, "pruner": "none",
        "network": {"cells": 1, "filters": 24}, "train": {"epochs": 1, "max_steps": 16},
    }))
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN / "nas"), "search", "--ray-address", cluster.address, "--storage", pg_url,
         "--preset", "cpu-quick", "--trials", "2", "--study", study, "--data", str(cifar_dir),
         "--cpus-per-trial", "1", "--gpus-per-trial", "0", "--seed", "7",
         "--config", str(config), "--json"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1500, check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, f"{result.stderr[-4000:]}\n{cluster.logs()}"
    summary = json.loads(result.stdout)
    assert summary["study"] == study and summary["trials"] == 2, summary

    # the results are in PostgreSQL, read back through the CLI
    board = subprocess.run(
        [str(BIN / "nas"), "leaderboard", "--study", study, "--storage", pg_url, "--json"],
        env=env, capture_output=True, text=True, timeout=300, check=True)
    rows = json.loads(board.stdout)
    assert sorted(r["trial"] for r in rows) == [0, 1], rows
    for row in rows:
        assert row["state"] in ("COMPLETE", "PRUNED"), row
        assert row["val_accuracy"] is not None and 0.0 <= row["val_accuracy"] <= 1.0
        assert row["epochs"] >= 1 and row["genotype"] and row["key"]

    from nas.db import open_database

    db = open_database(pg_url, create=False)
    try:
        search = db.search(study)
        assert search is not None and search.status == "finished"
        trials = db.trials(search.search_id)
    finally:
        db.close()
    assert len(trials) == 2
    assert all(t.worker_node and t.device == "cpu" for t in trials), trials

    # each node has one CPU and each trial needs one: Ray placed one trial on each node
    names = [f"trial-{study}-{n}" for n in (0, 1)]
    placed = cluster.python(TASK_NODES.format(dashboard=cluster.dashboard, names=names))
    assert set(placed) == set(names), placed
    assert set(placed.values()) == {cluster.head_id, cluster.worker_id}, placed
    print(f"2-trial search on 2 nodes: {elapsed:.0f}s")
