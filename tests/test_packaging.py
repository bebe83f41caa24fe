"""The package as users get it: one top-level name in the wheel, the web assets inside, the entry points."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_wheel_installs_one_top_level_package_with_its_web_assets(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("voxwire-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"voxwire"}
    for path in (
        "voxwire/engine/scheduler.py",
        "voxwire/web/index.html",
        "voxwire/web/vendor/msgpack.mjs",
        "voxwire/pipecat/tts.py",
    ):
        assert path in names


@pytest.mark.parametrize("module", ["voxwire", "voxwire.server", "voxwire.loadtest"])
def test_each_module_entry_point_runs(module: str) -> None:
    args = ["serve", "--help"] if module == "voxwire" else ["--help"]
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "--port" in done.stdout or "--url" in done.stdout


def test_the_server_imports_no_torch_itself() -> None:
    for path in (ROOT / "server").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert "import torch" not in source, path
