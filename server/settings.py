"""Server settings: one typed object, built once from CLI flags and ``VOXWIRE_*`` environment variables.

Precedence: a flag given on the command line, else ``VOXWIRE_<NAME>`` (upper case, e.g. ``VOXWIRE_PORT``),
else the default below. Nothing deeper in the code reads the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from voxwire.engine.config import MAX_SENTENCE_IDS, EngineConfig


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8765
    device: str = "auto"
    """auto (CUDA when available, else CPU), cpu, or cuda."""
    dtype: str = "auto"
    """auto (tf32 on CUDA, float32 on a CPU), float32, tf32 (CUDA only) or bf16."""
    voices: tuple[str, ...] = ("joe",)
    """Voices to load: "joe" (bundled), a Piper .onnx path, or a local transformers VitsModel directory."""
    log_level: str = "info"
    workers: int = 0
    """Engine compute threads; 0 (auto): one per CPU core on a CPU, one on a GPU."""
    threads: int = 0
    """torch intra-op threads per engine worker; 0 (auto): the cores but one, shared among the workers."""

    max_connections: int = 256
    max_streams: int = 4
    """Concurrent streams per connection."""
    max_text_bytes: int = 64 * 1024
    """UTF-8 bytes of text per stream."""
    max_frame_bytes: int = 256 * 1024
    """A larger incoming WebSocket message closes the connection with 1009."""
    max_buffered_audio_ms: int = 4000
    """Audio made but not yet sent, per connection; above it that connection's generation pauses."""
    max_ahead_ms: int = 2000
    """How far a stream's audio may run ahead of its playback clock before others go first."""
    max_asap_streams: int = 8
    """Most ``asap`` streams (``start.pace``: audio as fast as spare capacity allows) open at once."""
    admission_headroom: float = 0.8
    """Admit realtime streams up to this fraction of the engine's measured capacity (above 0, at most 1):
    lower keeps more slack for bursts and a noisy machine, higher packs more streams in."""
    max_batch: int = 0
    """Most windows (and sentences) in one engine batch; 0: 256 windows and 64 sentences on a GPU, 1 on a
    CPU (where a batch costs as much as its items run one by one, and only makes each step longer)."""
    shutdown_grace_s: float = 10.0
    """On SIGTERM, streams in progress get this long to finish before they are cancelled."""
    first_fragment_chars: int = 40
    tokens: tuple[str, ...] = field(default=(), repr=False)
    """Accepted auth tokens; none given means no auth (set but naming no token is refused at start)."""
    allowed_origins: tuple[str, ...] = ()
    """Browser Origins allowed to open a WebSocket besides the server's own (same-origin pages always may);
    ``*`` allows any."""
    idle_timeout_s: float = 120.0
    """A connection with no active stream for this long is closed (1000, reason "idle timeout")."""
    ping_interval_s: float = 20.0
    """The server pings every connection this often (WebSocket ping frames)."""
    ping_timeout_s: float = 20.0
    """A connection whose pong is this late is closed (1011)."""
    handshake_timeout_s: float = 10.0
    """A connection that has not completed its HTTP request and WebSocket handshake in this long is
    dropped, so half-open requests cannot pile up."""
    allow_raw_phonemes: bool = False
    """Let ``[[ phonemes ]]`` in client text reach the voice as phonemes (Piper voices)."""
    max_sentence_ids: int = MAX_SENTENCE_IDS
    """Longest phoneme sequence one engine step encodes; a longer sentence is cut at a clause or word."""
    cuda_graphs: bool = True
    """On CUDA, run the sentence stage and the window decoder as CUDA graphs (ignored on a CPU)."""

    def engine_config(self) -> EngineConfig:
        """The engine's part of these settings (raises ValueError on a bad value)."""
        return EngineConfig(
            voices=self.voices,
            device=self.device,
            dtype=self.dtype,
            workers=self.workers,
            threads=self.threads,
            max_batch=self.max_batch,
            max_ahead_s=self.max_ahead_ms / 1000,
            allow_raw_phonemes=self.allow_raw_phonemes,
            max_sentence_ids=self.max_sentence_ids,
            max_asap_streams=self.max_asap_streams,
            admission_headroom=self.admission_headroom,
            cuda_graphs=self.cuda_graphs,
        )


_LIST_FIELDS = {"voices", "tokens", "allowed_origins"}
_BOOLEANS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


def _convert(name: str, raw: str) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if name in _LIST_FIELDS:
        values = tuple(part.strip() for part in raw.split(",") if part.strip())
        if name == "tokens" and not values:
            raise ValueError("it is set but names no token; unset it to run without auth, or give the tokens")
        return values
    if kind == "bool":
        if raw.strip().lower() not in _BOOLEANS:
            raise ValueError("expected true or false")
        return _BOOLEANS[raw.strip().lower()]
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    return raw


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per setting; defaults stay None so that the environment can fill the gaps."""
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        shown = ",".join(default) if isinstance(default, tuple) else default
        if f.name == "tokens":
            shown = "none"
        parser.add_argument(
            flag,
            dest=f.name,
            default=None,
            metavar=f.name.upper(),
            help=f"env VOXWIRE_{f.name.upper()}; default: {shown}",
        )


def build_settings(args: argparse.Namespace | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Flags first, then ``VOXWIRE_*`` variables, then defaults; raises ValueError on a bad value."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = getattr(args, f.name, None) if args is not None else None
        if raw is None:
            raw = environ.get(f"VOXWIRE_{f.name.upper()}")
        if raw is None:
            continue
        try:
            values[f.name] = _convert(f.name, raw)
        except ValueError as error:
            raise ValueError(f"bad value for {f.name}: {raw!r}: {error}") from error
    settings = Settings(**values)
    for name in ("idle_timeout_s", "handshake_timeout_s", "ping_interval_s", "ping_timeout_s"):
        if not getattr(settings, name) > 0:
            raise ValueError(f"{name} must be more than 0")
    settings.engine_config()  # validates the engine's settings now, before anything starts
    return settings
