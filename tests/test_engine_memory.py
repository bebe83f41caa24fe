"""The engine's allocator settings: steps reuse their memory instead of faulting in fresh pages, and idle
moments still hand freed memory back to the OS."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from voxwire.engine.memory import hold_freed_memory, release_free_memory

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")

# Decodes a batch of windows on a compute thread of its own, as the engine does, and counts the page faults
# of the steady-state decodes before and after hold_freed_memory(). The convs are direct: the Winograd ones'
# larger transforms move glibc's dynamic mmap threshold sooner, so there its defaults fault less after a few
# steps (515 faults a decode against 21,000), and the probe would measure that rather than the settings.
_PROBE = """
import json, resource, sys, threading
import torch
from voxwire.engine.latent import Latent
from voxwire.engine.loader import load_voice
from voxwire.engine.memory import hold_freed_memory, release_free_memory
from voxwire.engine.windows import WindowSpec

torch.set_num_threads(1)
voice = load_voice("joe", device="cpu", warm_up=False, winograd=False)
size = 64
frames = size + 2 * voice.context_frames
z = torch.randn(voice.stage.flow_size, frames)
latent = Latent(z, z, torch.zeros(0, dtype=torch.long), ready=frames)
jobs = [(latent, WindowSpec(voice.context_frames, voice.context_frames + size))] * 4
faults = {}

def decode(name, repeats=4):
    voice.decode_windows(jobs)  # the first run at a shape sets up its kernels
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        voice.decode_windows(jobs)
    faults[name] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / repeats

def run():
    decode("default")
    faults["held"] = hold_freed_memory()
    decode("hold")
    faults["released"] = release_free_memory()

thread = threading.Thread(target=run)
thread.start()
thread.join()
print(json.dumps(faults))
"""


@glibc
@pytest.mark.slow
def test_held_memory_takes_the_page_faults_out_of_the_engines_steps() -> None:
    probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=240)
    assert probe.returncode == 0, probe.stderr
    faults = json.loads(probe.stdout.strip().splitlines()[-1])
    assert faults["held"] is True
    assert faults["default"] > 1000  # glibc's defaults fault in every step's activations afresh
    assert faults["hold"] < faults["default"] / 20
    assert faults["released"] is True  # and the held memory still goes back when asked


@glibc
def test_the_settings_are_taken() -> None:
    assert hold_freed_memory() is True
    assert hold_freed_memory() is True  # idempotent: the engine may start more than once in a process
    assert isinstance(release_free_memory(), bool)
