"""A real voxwire server in a subprocess (``python -m voxwire.server``) on a free port.

For end-to-end tests and benchmarks: ``start()`` returns once the voices are loaded, ``metrics()`` reads
``/metrics`` through prometheus_client's own parser, ``stop()`` sends SIGTERM and waits for the drain.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

READY_LINE = "ready: voices"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``start()`` returns once the voices are loaded and /health is 200; ``stop()`` sends SIGTERM."""

    def __init__(
        self,
        *extra_args: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
        module: str = "voxwire.server",
        cwd: str | None = None,
    ) -> None:
        """``python -m module --host 127.0.0.1 --port PORT extra_args...`` in ``cwd``; ``module`` takes
        ``voxwire serve``'s flags."""
        self.extra_args = extra_args
        self.module = module
        self.cwd = cwd
        self.env = env or {}
        self.port = port or free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.log: collections.deque[str] = collections.deque(maxlen=400)
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def start(self, timeout: float = 180.0) -> ServerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        cmd = [
            sys.executable,
            "-m",
            self.module,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=self.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._ready.clear()
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout) or self.proc.poll() is not None:
            output = "\n".join(self.log)
            self.kill()
            raise RuntimeError(f"voxwire server did not become ready; output:\n{output}")
        with urllib.request.urlopen(self.http_url + "/health", timeout=10) as response:
            if response.status != 200:
                raise RuntimeError(f"/health answered {response.status}")
        return self

    def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.log.append(line.rstrip())
                if READY_LINE in line:
                    self._ready.set()
        self._ready.set()  # the process ended: wake start() so it can report

    def metrics(self) -> dict[str, float]:
        """The server's Prometheus metrics, as {'name{labels}': value}."""
        with urllib.request.urlopen(self.http_url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{key}="{value}"' for key, value in sample.labels.items())
                values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return values

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        return code

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
