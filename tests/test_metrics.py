"""The search's metrics outside the process: the names the code exports, the provisioned
"nas search" Grafana dashboard that queries them, `nas monitor`, and (slow) Debian's real
Prometheus scraping a real Ray cluster through a tiny real search."""

from __future__ import annotations

import ast
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nas.cli import main

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "nas-search.json"
METRIC = r"\bray_nas_\w+"


def exported_metrics() -> dict[str, str]:
    """Prometheus name -> kind of every metric nas/search/monitor.py defines, read from its source.

    Ray exports a custom metric `x` as `ray_x`, and a counter as `ray_x_total` (checked
    against a real Prometheus by the slow test below).
    """
    tree = ast.parse((ROOT / "nas" / "search" / "monitor.py").read_text())
    out = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("Counter", "Gauge", "Histogram") and node.args
                and isinstance(node.args[0], ast.Constant)):
            name = f"ray_{node.args[0].value}"
            out[f"{name}_total" if node.func.id == "Counter" else name] = node.func.id
    return out


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _expressions(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    return {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in dashboard["panels"]}


def test_the_code_exports_the_metrics_the_issue_names() -> None:
    assert set(exported_metrics()) == {
        "ray_nas_epochs_done_total", "ray_nas_val_accuracy", "ray_nas_images_per_s",
        "ray_nas_trials_finished_total", "ray_nas_best_val_accuracy", "ray_nas_trials_running"}


def test_every_panel_queries_metrics_the_code_exports() -> None:
    exported = set(exported_metrics())
    dashboard = _dashboard()
    used: set[str] = set()
    for title, exprs in _expressions(dashboard).items():
        assert exprs, f"panel {title!r} has no query"
        for expr in exprs:
            names = set(re.findall(METRIC, expr))
            assert names and names <= exported, (title, expr, sorted(names - exported))
            assert 'study=~"$study"' in expr, (title, expr)  # one study or several
            used |= names
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert set(re.findall(METRIC, variable["definition"])) <= exported
    assert used == exported, sorted(exported - used)  # nothing exported goes unshown


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "nas-search" and dashboard["title"] == "nas search"
    exprs = _expressions(dashboard)
    wanted = {  # panel title -> the metric it must show
        "Best validation accuracy so far": "ray_nas_best_val_accuracy",
        "Validation accuracy of each trial at each report": "ray_nas_val_accuracy",
        "Trials finished by state": "ray_nas_trials_finished_total",
        "Images/s per trial": "ray_nas_images_per_s",
        "Trials running": "ray_nas_trials_running",
    }
    for title, metric in wanted.items():
        assert any(metric in e for e in exprs[title]), title
    assert "by (study, state)" in exprs["Trials finished by state"][0]
    assert "by (study, trial)" in exprs["Validation accuracy of each trial at each report"][0]
    for panel in dashboard["panels"]:  # every panel follows the data-source variable
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    datasource = dashboard["templating"]["list"][0]
    assert datasource["name"] == "datasource" and datasource["current"]["value"] == "Prometheus"


def test_monitor_without_a_ray_session_is_bad_input(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "--temp-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"no Ray session under {tmp_path}" in err
    assert "ray start --head" in err


# -- Debian's real Prometheus and a real Ray head ---------------------------------------------


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _wait(what: str, timeout: float, check: Any) -> Any:
    """Poll `check` until it returns something true; bounded."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Head:
    address: str
    temp_dir: Path
    dashboard: str
    prometheus_port: int
    env: dict[str, str]

    def health(self, what: str) -> dict[str, Any]:
        """The head's own check of Prometheus or Grafana (what the Metrics view asks)."""
        request = urllib.request.Request(f"{self.dashboard}/api/{what}_health")
        request.add_header("Authorization", f"Bearer {self.env['RAY_AUTH_TOKEN']}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            return dict(json.loads(exc.read()))


@pytest.fixture
def ray_head() -> Iterator[Head]:
    """A Ray head on 127.0.0.2 (token auth, its own temp dir, 1 CPU) that flushes metrics
    every 0.5 s (Ray's default is 10 s), told of a Prometheus on a port chosen here and of a
    Grafana that does not exist; always stopped, by process id."""
    from test_multinode import BIN, _free_port, _start_node, _wait_for_port

    prometheus_port, dashboard_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_ADDRESS", "RAY_AUTH", "RAY_PROMETHEUS", "RAY_GRAFANA"))}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16),
               RAY_USAGE_STATS_ENABLED="0", RAY_metrics_report_interval_ms="500",
               RAY_PROMETHEUS_HOST=f"http://127.0.0.1:{prometheus_port}",
               RAY_GRAFANA_HOST=f"http://127.0.0.1:{_free_port()}",  # nothing listens there
               PATH=f"{BIN}:{env.get('PATH', '')}")
    gcs = _free_port()
    node = _start_node("head", "127.0.0.2", [
        "--head", f"--port={gcs}", "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}", f"--metrics-export-port={_free_port()}",
        f"--ray-client-server-port={_free_port()}"], env)
    try:
        _wait_for_port("127.0.0.2", gcs, time.monotonic() + 180)
        yield Head(f"127.0.0.2:{gcs}", node.temp_dir, f"http://127.0.0.1:{dashboard_port}",
                   prometheus_port, env)
    finally:
        node.stop()
        assert not node.leftovers(), "the Ray head left processes behind"
        shutil.rmtree(node.temp_dir, ignore_errors=True)
        node.log.unlink(missing_ok=True)


@pytest.mark.slow
def test_a_real_prometheus_scrapes_a_searchs_metrics(ray_head: Head, cifar_dir: Path,
                                                     tmp_path: Path) -> None:
    from faults.faultkit import write_config

    if shutil.which("prometheus") is None:
        pytest.skip("Debian's prometheus is not installed (.ci/run installs it)")
    address, temp_dir, env = ray_head.address, ray_head.temp_dir, ray_head.env
    nas = [sys.executable, "-m", "nas"]

    # the head writes its Prometheus config and the list of node endpoints once it is up
    def monitor() -> dict[str, Any] | None:
        done = subprocess.run(
            [*nas, "monitor", "--temp-dir", str(temp_dir), "--write-config",
             str(tmp_path / "prometheus.yml"), "--scrape-interval", "1", "--json"],
            env=env, capture_output=True, text=True, timeout=60, check=False)
        found = json.loads(done.stdout) if done.returncode == 0 else None
        return found if found and found["targets"] else None

    where = _wait("the head's scrape targets", 120, monitor)
    assert where["command"] == f"prometheus --config.file={tmp_path / 'prometheus.yml'}"
    assert Path(where["session"], "metrics", "prometheus", "prometheus.yml").is_file()
    # loopback only: Ray advertises the node IP it was given, never the host's address
    assert all(t.startswith("127.0.0.2:") for t in where["targets"]), where

    port = ray_head.prometheus_port
    prometheus = f"http://127.0.0.1:{port}"
    log = (tmp_path / "prometheus.log").open("wb")
    server = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait("Prometheus to answer", 60, lambda: _query(prometheus, "vector(1)"))
        # what the README tells a person to ask when the Metrics view stays empty
        assert ray_head.health("prometheus")["msg"] == "prometheus running"
        grafana = ray_head.health("grafana")
        assert grafana["result"] is False and "Grafana healthcheck failed" in grafana["msg"]
        study = f"prom{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        search = subprocess.run(
            [*nas, "search", "--ray-address", address, "--storage",
             f"sqlite:///{tmp_path / 'nas.db'}", "--preset", "cpu-quick", "--trials", "2",
             "--study", study, "--data", str(cifar_dir), "--pruner", "none",
             "--sampler", "random", "--cpus-per-trial", "1", "--gpus-per-trial", "0",
             "--seed", "3", "--config", str(write_config(tmp_path / "search.json")),
             "--json"],
            env={**env, "NAS_STORAGE": ""}, cwd=tmp_path, capture_output=True, text=True,
            timeout=600, check=False)
        assert search.returncode == 0, search.stderr[-4000:]
        assert json.loads(search.stdout)["trials"] == 2
        # `nas search` says once where its metrics are and how to scrape them
        lines = [x for x in search.stderr.splitlines() if x.startswith("metrics: ")]
        assert len(lines) == 1 and "prometheus --config.file=" in lines[0], search.stderr
        search_s = time.monotonic() - started

        # the broker (and its series) is gone once the search ends: read the last samples
        def seen(metric: str) -> list[dict[str, Any]]:
            return _query(prometheus, f'last_over_time({metric}{{study="{study}"}}[15m])')

        accuracy = _wait("nas_val_accuracy in Prometheus", 30,
                         lambda: seen("ray_nas_val_accuracy"))
        finished = _wait("nas_trials_finished in Prometheus", 30,
                         lambda: seen("ray_nas_trials_finished_total"))
        assert {r["metric"]["trial"] for r in accuracy} <= {"0", "1"}
        assert all(0.0 <= float(r["value"][1]) <= 1.0 for r in accuracy), accuracy
        assert {r["metric"]["state"] for r in finished} <= {"COMPLETE", "PRUNED", "FAIL"}
        # the broker is killed when the search ends, so its last flush (0.5 s here) may be lost
        assert 1 <= sum(float(r["value"][1]) for r in finished) <= 2, finished
        assert all(r["metric"]["instance"].startswith("127.0.0.2:") for r in finished)
        assert seen("ray_nas_trials_running"), "the trials-running gauge never reached it"
        # every target Prometheus scraped was on loopback
        targets = _get(f"{prometheus}/api/v1/targets")["data"]["activeTargets"]
        assert targets and all(urllib.parse.urlparse(t["scrapeUrl"]).hostname == "127.0.0.2"
                               for t in targets), targets
        print(f"2-trial search scraped by Prometheus: {search_s:.0f}s")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        log.close()


def test_monitor_is_a_light_command(tmp_path: Path) -> None:
    """It reads two files: no torch, ray or optuna (as `nas status`)."""
    from test_cli_light import probe

    code, heavy, _ = probe("monitor", "--temp-dir", str(tmp_path))
    assert code == 2 and heavy == []
