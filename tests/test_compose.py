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
REQUIRED = ("POSTGRES_PASSWORD", "RAY_AUTH_TOKEN", "NAS_DATA_DIR")


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
    assert {"postgres", "ray-head", "ray-worker", "nas", "optuna-dashboard"} <= set(services)
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
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE.read_text()))
    assert required == set(REQUIRED)


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


def test_compose_config_validates_with_the_host_network_override(tmp_path: Path) -> None:
    override = ROOT / "docker" / "compose.hostnet.yml"
    result = _docker_compose(tmp_path, _env_file(tmp_path), "-f", str(override), "config")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name in ("ray-head", "ray-worker", "nas"):
        assert services[name]["network_mode"] == "host", name
    assert "--dashboard-host=127.0.0.1" in services["ray-head"]["command"]


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
