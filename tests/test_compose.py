"""The GPU-cluster deployment: docker-compose.yml, .env.example, the Dockerfile and the
container scripts. No Docker engine is needed: Debian's `docker-compose config` validates
and interpolates the file, and the entrypoint runs here as it runs in the image."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
EXAMPLE = ROOT / ".env.example"
REQUIRED = ("POSTGRES_PASSWORD", "RAY_AUTH_TOKEN", "GRAFANA_ADMIN_PASSWORD", "NAS_DATA_DIR")
GRAFANA = ROOT / "docker" / "grafana"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _example() -> dict[str, str]:
    """The variables .env.example defines (value may be empty)."""
    out = {}
    for line in EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            out[name.strip()] = value.strip()
    return out


def _env_file(tmp_path: Path, drop: str | None = None) -> Path:
    """.env.example with the required secrets filled in, optionally without one variable."""
    lines = []
    for line in EXAMPLE.read_text().splitlines():
        name = line.partition("=")[0].strip()
        if name == drop:
            continue
        if name in REQUIRED and line.strip() == f"{name}=":
            line = f"{name}=test{name.lower().replace('_', '')}0123"
        lines.append(line)
    path = tmp_path / "env"
    path.write_text("\n".join(lines) + "\n")
    return path


def _docker_compose(tmp_path: Path, env_file: Path, *args: str) -> subprocess.CompletedProcess:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}  # no stray POSTGRES_* etc.
    return subprocess.run(
        ["docker-compose", "--env-file", str(env_file), "-f", str(COMPOSE), *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )


# -- the file itself -------------------------------------------------------------------


def test_services() -> None:
    services = _compose()["services"]
    assert {"postgres", "ray-head", "ray-worker", "nas", "optuna-dashboard", "prometheus",
            "grafana"} <= set(services)
    assert services["optuna-dashboard"]["profiles"] == ["dashboard"]
    assert "profiles" not in services["ray-worker"]
    assert "version" not in _compose()  # obsolete in compose v2, optional in 1.29


def test_ports_are_published_on_loopback_only() -> None:
    services = _compose()["services"]
    head_ports = services["ray-head"]["ports"]
    assert len(head_ports) == 1 and head_ports[0].startswith("127.0.0.1:")
    assert head_ports[0].endswith(":8265")
    assert "--dashboard-port=8265" in services["ray-head"]["command"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)
    assert "ports" not in services["postgres"]


def test_ray_token_auth_everywhere() -> None:
    services = _compose()["services"]
    for name in ("ray-head", "ray-worker", "nas"):
        env = services[name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token", name
        assert env["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?"), name


def test_gpu_reservation_and_scaling() -> None:
    worker = _compose()["services"]["ray-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    # --scale ray-worker=N needs no fixed name and no host port per replica
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"] == ["/opt/nas/docker/ray-worker.sh"]


def test_healthchecks() -> None:
    services = _compose()["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/api/gcs_healthz" in " ".join(services["ray-head"]["healthcheck"]["test"])
    assert "/api/local_raylet_healthz" in " ".join(services["ray-worker"]["healthcheck"]["test"])


def test_depends_on_conditions() -> None:
    services = _compose()["services"]
    assert services["nas"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "ray-head": {"condition": "service_healthy"},
        "ray-worker": {"condition": "service_healthy"},
    }
    assert services["ray-worker"]["depends_on"] == {"ray-head": {"condition": "service_healthy"}}
    assert services["optuna-dashboard"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"}}


def test_driver_command_and_storage() -> None:
    nas = _compose()["services"]["nas"]
    command = nas["command"]
    assert command[:2] == ["nas", "search"] and "--resume" in command
    assert any(arg.startswith("--ray-address=") for arg in command)
    # the URL (with its password) comes from the environment, not argv: `ps` and the Ray
    # dashboard's job list show argv
    assert not any("postgresql" in arg for arg in command)
    assert nas["environment"]["NAS_STORAGE"].startswith("postgresql+psycopg://")
    assert nas["environment"]["NAS_WAIT_FOR_DB"] == "1"
    volumes = nas["volumes"]
    assert any(v.endswith(":/data") for v in volumes) and "nas-results:/results" in volumes


def test_env_example_lists_every_variable() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    example = _example()
    assert used <= set(example), sorted(used - set(example))
    assert used == set(example), sorted(set(example) - used)  # and nothing stale
    assert example["POSTGRES_PASSWORD"] == "" and example["RAY_AUTH_TOKEN"] == ""
    assert example["GRAFANA_ADMIN_PASSWORD"] == ""
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE.read_text()))
    assert required == set(REQUIRED)


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a named volume or a repository path) of a service."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        out[target] = source
    return out


def test_prometheus_scrapes_every_ray_node_through_the_heads_discovery_file() -> None:
    compose = _compose()
    services = compose["services"]
    head, prometheus = services["ray-head"], services["prometheus"]
    assert prometheus["image"].startswith("${PROMETHEUS_IMAGE:-prom/prometheus:v")
    # the head's temp dir is a named volume that Prometheus reads at the same path, so the
    # link in it (to the current session's file) resolves there too
    assert _mounts(head)["/tmp/ray"] == "ray-tmp"
    assert _mounts(prometheus)["/tmp/ray"] == "ray-tmp"
    assert "ray-tmp:/tmp/ray:ro" in prometheus["volumes"]
    assert _mounts(prometheus)["/etc/prometheus/prometheus.yml"] == \
        "./docker/prometheus/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert _mounts(prometheus)["/prometheus"] == "prometheus-data"
    config = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    # no static targets: the head lists every node, so --scale ray-worker=N just works
    assert "static_configs" not in job
    assert job["file_sd_configs"] == [{"files": ["/tmp/ray/prom_metrics_service_discovery.json"]}]
    assert {"ray-tmp", "prometheus-data", "grafana-data"} <= set(compose["volumes"])
    if shutil.which("promtool"):
        subprocess.run(["promtool", "check", "config",
                        str(ROOT / "docker" / "prometheus" / "prometheus.yml")],
                       check=True, capture_output=True, timeout=60)


def test_the_head_points_its_metrics_view_at_prometheus_and_grafana() -> None:
    env = _compose()["services"]["ray-head"]["environment"]
    assert env["RAY_PROMETHEUS_HOST"] == "http://prometheus:9090"
    assert env["RAY_GRAFANA_HOST"] == "http://grafana:3000"
    # what the browser loads: the published port on 127.0.0.1 (or an SSH tunnel to it)
    assert env["RAY_GRAFANA_IFRAME_HOST"] == "http://127.0.0.1:${GRAFANA_PORT:-3000}"


def test_grafana_is_provisioned_embeddable_and_anonymous_read_only() -> None:
    grafana = _compose()["services"]["grafana"]
    assert grafana["image"].startswith("${GRAFANA_IMAGE:-grafana/grafana:")
    env = grafana["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert env["GF_SECURITY_ALLOW_EMBEDDING"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "./docker/grafana/provisioning"
    assert mounts["/tmp/ray"] == "ray-tmp" and mounts["/var/lib/grafana"] == "grafana-data"
    assert (ROOT / mounts["/etc/grafana/dashboards/nas"] / "nas-search.json").is_file()
    assert env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == \
        "/etc/grafana/dashboards/nas/nas-search.json"

    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
                             .read_text())["datasources"]
    assert [(d["name"], d["type"], d["url"]) for d in sources] == [
        ("Prometheus", "prometheus", "http://prometheus:9090")]  # the name Ray's panels use
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")
                               .read_text())["providers"]
    paths = {p["name"]: p["options"]["path"] for p in providers}
    assert paths == {"nas": "/etc/grafana/dashboards/nas",
                     # where the head writes its default dashboards (in the ray-tmp volume)
                     "Ray": "/tmp/ray/session_latest/metrics/grafana/dashboards"}


def test_no_credential_in_any_provisioning_file() -> None:
    files = [p for folder in ("grafana", "prometheus")
             for p in (ROOT / "docker" / folder).rglob("*") if p.is_file()]
    assert len(files) >= 4
    for path in files:
        assert not re.search(r"password|secret|token|basicAuth|apiKey", path.read_text(),
                             re.I), path


def test_env_file_is_ignored_and_kept_out_of_the_image() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
    assert ignored.returncode == 0
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".git", "nas.db", "data"} <= set(dockerignore)


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=pytorch/pytorch:\S+-cuda12\.\d+-cudnn9-runtime$",
                     text, re.M)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"pip install (--no-deps )?\.", text)
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not re.search(r"password|token|secret", "\n".join(code), re.I)  # none baked in
    assert 'ENTRYPOINT ["/opt/nas/docker/entrypoint.sh"]' in text


# -- docker-compose itself -------------------------------------------------------------


def test_compose_config_validates(tmp_path: Path) -> None:
    result = _docker_compose(tmp_path, _env_file(tmp_path), "config", "-q")
    assert result.returncode == 0, result.stderr
    result = _docker_compose(tmp_path, _env_file(tmp_path), "config")
    resolved = yaml.safe_load(result.stdout)["services"]
    assert resolved["ray-head"]["ports"] == ["127.0.0.1:8265:8265/tcp"]
    assert resolved["nas"]["environment"]["NAS_STORAGE"] == (
        "postgresql+psycopg://nas:testpostgrespassword0123@postgres:5432/nas")
    assert resolved["prometheus"]["ports"] == ["127.0.0.1:9090:9090/tcp"]
    assert resolved["grafana"]["ports"] == ["127.0.0.1:3000:3000/tcp"]
    assert resolved["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == \
        "testgrafanaadminpassword0123"
    assert resolved["ray-head"]["environment"]["RAY_GRAFANA_IFRAME_HOST"] == \
        "http://127.0.0.1:3000"


def test_compose_config_validates_with_the_host_network_override(tmp_path: Path) -> None:
    override = ROOT / "docker" / "compose.hostnet.yml"
    result = _docker_compose(tmp_path, _env_file(tmp_path), "-f", str(override), "config")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name in ("ray-head", "ray-worker", "nas"):
        assert services[name]["network_mode"] == "host", name
    assert "--dashboard-host=127.0.0.1" in services["ray-head"]["command"]
    # on the host's network the head reaches Prometheus and Grafana at their published ports
    head_env = services["ray-head"]["environment"]
    assert head_env["RAY_PROMETHEUS_HOST"] == "http://127.0.0.1:9090"
    assert head_env["RAY_GRAFANA_HOST"] == "http://127.0.0.1:3000"


@pytest.mark.parametrize("variable", REQUIRED)
def test_a_missing_required_variable_fails_fast_naming_it(tmp_path: Path, variable: str) -> None:
    result = _docker_compose(tmp_path, _env_file(tmp_path, drop=variable), "config", "-q")
    assert result.returncode != 0
    assert f"set {variable} in .env" in result.stderr


def test_the_unedited_example_does_not_start(tmp_path: Path) -> None:
    result = _docker_compose(tmp_path, EXAMPLE, "config", "-q")
    assert result.returncode != 0 and "set POSTGRES_PASSWORD in .env" in result.stderr


# -- the container scripts -------------------------------------------------------------


@pytest.mark.parametrize("script", ["entrypoint.sh", "ray-worker.sh"])
def test_scripts_are_valid_posix_sh(script: str) -> None:
    path = ROOT / "docker" / script
    assert os.access(path, os.X_OK)
    subprocess.run(["sh", "-n", str(path)], check=True)


def _entrypoint(env: dict[str, str], *command: str) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)  # where `nas` is installed
    full = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/"),
            **env}
    return subprocess.run([str(ROOT / "docker" / "entrypoint.sh"), *command], env=full,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.postgres
def test_entrypoint_waits_for_the_database_then_runs_the_command() -> None:
    ok = _entrypoint({"NAS_WAIT_FOR_DB": "1",
                      "NAS_STORAGE": "postgresql+psycopg://postgres@127.0.0.1:5432/test"},
                     "echo", "driver started")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "driver started"


def test_entrypoint_gives_up_on_a_database_that_never_comes() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = _entrypoint({"NAS_WAIT_FOR_DB": "1", "NAS_DB_WAIT_ATTEMPTS": "2",
                        "NAS_DB_WAIT_DELAY": "0.1",
                        "NAS_STORAGE": f"postgresql+psycopg://nas:pw@127.0.0.1:{port}/nas"},
                       "echo", "driver started")
    assert dead.returncode == 1
    assert "driver started" not in dead.stdout
    assert "did not accept connections after 2 attempts" in dead.stderr
    assert ":pw@" not in dead.stderr
