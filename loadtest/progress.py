"""The live progress line: snapshots from each worker process, summed into one line once a second."""

import time
from dataclasses import dataclass
from typing import TextIO

from .stats import percentile

PROGRESS_INTERVAL_S = 1.0


@dataclass(frozen=True)
class ProgressSnapshot:
    """One process's counts so far; `new_first_audio_ms` holds only the values since its last snapshot."""

    elapsed_s: float
    active: int
    finished: int
    errors: int
    underruns: int
    new_first_audio_ms: tuple[float, ...]


class ProgressBoard:
    """Sums the latest snapshot of every process and writes the progress line to `out`.

    On a terminal the line is rewritten in place (`\\r`); elsewhere (a log file, a CI job) each update is a
    line of its own.
    """

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = out.isatty()
        self._latest: dict[int, ProgressSnapshot] = {}
        self._first_audio_ms: list[float] = []
        self._last_render = float("-inf")

    def update(self, proc: int, snapshot: ProgressSnapshot) -> None:
        self._latest[proc] = snapshot
        self._first_audio_ms.extend(snapshot.new_first_audio_ms)

    def line(self) -> str:
        snapshots = self._latest.values()
        elapsed = max((snapshot.elapsed_s for snapshot in snapshots), default=0.0)
        p50 = percentile(self._first_audio_ms, 50)
        first_audio = "-" if p50 is None else f"{p50:.0f} ms"
        return (
            f"[{elapsed:7.1f}s] active {sum(s.active for s in snapshots)}"
            f"  done {sum(s.finished for s in snapshots)}"
            f"  errors {sum(s.errors for s in snapshots)}"
            f"  first-audio p50 {first_audio}"
            f"  underruns {sum(s.underruns for s in snapshots)}"
        )

    def render(self, *, force: bool = False) -> None:
        """Write the line, at most once per `PROGRESS_INTERVAL_S` unless `force`."""
        now = time.monotonic()
        if not force and now - self._last_render < PROGRESS_INTERVAL_S:
            return
        self._last_render = now
        if self._tty:
            self._out.write(f"\r\x1b[K{self.line()}")
        else:
            self._out.write(f"{self.line()}\n")
        self._out.flush()

    def finish(self) -> None:
        """Write the final counts and end the line."""
        self.render(force=True)
        if self._tty:
            self._out.write("\n")
            self._out.flush()
