"""nginx in front of voxwire replicas, for tests and benchmarks: the repository's recipe, run as it is.

``NginxProxy`` takes the recipe (``deploy/nginx/voxwire.conf``), puts the given replicas' ports in its
upstream and a free port in its ``listen``, wraps it in a minimal main configuration whose files all live in
a scratch folder, and runs ``nginx -g 'daemon off;'`` until ``stop()``. Nothing else of the recipe changes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from voxwire.server.process import free_port

_UPSTREAM_SERVER = re.compile(r"^(\s*)server 127\.0\.0\.1:\d+( [^;]*)?;\n", re.MULTILINE)
_LISTEN = re.compile(r"^(\s*)listen \d+;", re.MULTILINE)


def find_nginx() -> str | None:
    """The nginx binary (Debian puts it in /usr/sbin, which a user's PATH may lack), or None."""
    found = shutil.which("nginx")
    if found is not None:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def render(recipe: str, upstream_ports: Sequence[int], listen_port: int) -> str:
    """The recipe with one upstream ``server`` line per port (the recipe's options kept) and ``listen``
    on 127.0.0.1:``listen_port``; ValueError if the recipe has no such lines to replace."""
    matches = list(_UPSTREAM_SERVER.finditer(recipe))
    if not matches or not _LISTEN.search(recipe):
        raise ValueError("the recipe has no 'server 127.0.0.1:PORT' upstream lines or no 'listen PORT;'")
    indent, options = matches[0].group(1), matches[0].group(2) or ""
    servers = "".join(f"{indent}server 127.0.0.1:{port}{options};\n" for port in upstream_ports)
    first, last = matches[0].start(), matches[-1].end()
    rendered = recipe[:first] + servers + recipe[last:]
    return _LISTEN.sub(rf"\1listen 127.0.0.1:{listen_port};", rendered, count=1)


def _main_config(scratch: Path, site: Path) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""  # as root, workers would run as nobody: keep access
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "\n".join(f"    {kind}_temp_path {scratch / kind};" for kind in kinds)
    return (
        f"{user}worker_processes 1;\n"
        f"pid {scratch / 'nginx.pid'};\n"
        f"error_log {scratch / 'error.log'} notice;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"    access_log {scratch / 'access.log'};\n"
        f"{temp}\n"
        f"    include {site};\n"
        "}\n"
    )


class NginxProxy:
    """nginx running ``recipe`` in front of ``upstream_ports`` on a free port of 127.0.0.1."""

    def __init__(self, recipe: Path, upstream_ports: Sequence[int], port: int | None = None) -> None:
        binary = find_nginx()
        if binary is None:
            raise FileNotFoundError("nginx is not installed (Debian: apt-get install nginx-light)")
        self.binary = binary
        self.port = port or free_port()
        self._scratch = Path(tempfile.mkdtemp(prefix="voxwire-nginx-"))
        site = self._scratch / "voxwire.conf"
        site.write_text(render(recipe.read_text(), upstream_ports, self.port))
        self.config = self._scratch / "nginx.conf"
        self.config.write_text(_main_config(self._scratch, site))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def error_log(self) -> str:
        path = self._scratch / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout: float = 30.0) -> NginxProxy:
        """Check the configuration (``nginx -t``), start nginx, and return once it answers HTTP."""
        command = [self.binary, "-p", str(self._scratch), "-c", str(self.config)]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused the configuration:\n{check.stderr}")
        self.proc = subprocess.Popen([*command, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not start; its error log:\n{self.error_log()}")
            time.sleep(0.05)
        return self

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.http_url + "/metrics", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer (the recipe denies /metrics) means nginx is up
        except OSError:
            return False

    def stop(self) -> None:
        """Stop nginx (SIGTERM) and remove its scratch folder."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> NginxProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
