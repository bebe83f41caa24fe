"""The deployment files in deploy/: the Kubernetes manifests agree with the server they run, and the
one-replica-per-GPU script starts, lists and drains its replicas."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.ws_client import http_status, wait_until
from voxwire.server.app import create_app
from voxwire.server.connection import DRAIN_SETTLE_S, FLUSH_TIMEOUT_S
from voxwire.server.metrics import Metrics
from voxwire.server.process import free_port
from voxwire.server.settings import Settings

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
SCRIPT = ROOT / "deploy" / "multi-gpu.sh"
UVICORN_SHUTDOWN_S = 5  # timeout_graceful_shutdown in server/run.py


def manifests() -> dict[str, Any]:
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            found[document["kind"]] = document
    return found


def test_the_manifests_probe_endpoints_the_server_has_and_wait_out_its_drain() -> None:
    docs = manifests()
    assert set(docs) == {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    routes = {route.path for route in create_app(Settings()).routes}  # type: ignore[attr-defined]
    probes = {
        name: container[name]["httpGet"]["path"]
        for name in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert probes == {"startupProbe": "/health", "readinessProbe": "/ready", "livenessProbe": "/live"}
    assert set(probes.values()) <= routes
    assert container["ports"][0]["containerPort"] == Settings().port
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1  # the engine owns one device
    env = {item["name"]: item.get("value") for item in container["env"]}
    drain_s = (
        container["lifecycle"]["preStop"]["sleep"]["seconds"]
        + float(env["VOXWIRE_SHUTDOWN_GRACE_S"])
        + DRAIN_SETTLE_S
        + FLUSH_TIMEOUT_S
        + UVICORN_SHUTDOWN_S
    )
    assert pod["terminationGracePeriodSeconds"] > drain_s
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["Service"]["spec"]["selector"].items() <= labels.items()
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]


def test_the_autoscaler_scales_on_a_metric_the_server_exports() -> None:
    (metric,) = manifests()["HorizontalPodAutoscaler"]["spec"]["metrics"]
    name = metric["pods"]["metric"]["name"]
    assert f"\n{name} ".encode() in Metrics().render()


def run_script(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env={**os.environ, **env}, capture_output=True, text=True, check=False
    )


def test_the_multi_gpu_script_runs_one_replica_per_device_on_consecutive_ports() -> None:
    done = run_script("--dry-run", "--workers", "1", GPUS="0,1,3", BASE_PORT="9000", PYTHON="py")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1:4] == [
        f"    server 127.0.0.1:{9000 + i} max_fails=1 fail_timeout=10s;  # GPU {gpu}"
        for i, gpu in enumerate("013")
    ]
    assert lines[4:] == [
        f"env CUDA_VISIBLE_DEVICES={gpu} VOXWIRE_DEVICE=cuda py -m voxwire.server --port {port} --workers 1"
        for port, gpu in zip((9000, 9001, 9002), "013", strict=True)
    ]


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this host lists its GPUs")
def test_the_multi_gpu_script_without_gpus_says_how_to_name_them() -> None:
    done = run_script("--dry-run", GPUS="")
    assert done.returncode == 2 and "GPUS=0,1" in done.stderr


@pytest.mark.slow
def test_the_multi_gpu_script_starts_its_replicas_and_drains_them_on_sigterm() -> None:
    base = free_port()
    ports = (base, base + 1)
    env = {
        **os.environ,
        "GPUS": "0,1",
        "BASE_PORT": str(base),
        "PYTHON": sys.executable,
        "VOXWIRE_DEVICE": "cpu",
    }
    script = subprocess.Popen(
        ["bash", str(SCRIPT), "--workers", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for port in ports:  # CPU here: two replicas, as on two GPUs
            wait_until(
                lambda p=port: http_status(f"http://127.0.0.1:{p}/ready") == 200, 120, f"replica {port}"
            )
        script.send_signal(signal.SIGTERM)
        assert script.wait(60) == 0
        assert [http_status(f"http://127.0.0.1:{port}/live") for port in ports] == [0, 0]  # both gone
    finally:
        if script.poll() is None:
            script.kill()
            script.wait()
