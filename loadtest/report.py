"""The figures of a load run, computed from its raw results: a table for people, a dict for JSON."""

from dataclasses import asdict, dataclass
from typing import Any

from .config import LoadConfig
from .results import Outcome, RunResult
from .stats import Distribution

RECORDS_IN_JSON_LIMIT = 2000
"""`to_dict` includes the per-stream records when a run has at most this many."""


@dataclass(frozen=True)
class LoadReport:
    """What a load run measured. Percentiles are nearest-rank (see `loadtest.stats`), over all processes.

    First audio runs from the first `text` frame sent to the first chunk's arrival; inter-chunk gaps, first
    audio and underruns use the chunks that arrived before the client's `cancel`, if any. Each underrun is
    the text's pace's or the server's (or of unknown cause without word timings), as `loadtest.playback`
    tells them apart. `x_real_time` is
    the audio received (seconds) over the run's wall time (from the first connection to the end).
    """

    config: LoadConfig
    result: RunResult
    outcomes: dict[str, int]
    cancels_sent: int
    first_audio_ms: Distribution
    gap_ms: Distribution
    underruns: int
    streams_with_underruns: int
    underruns_text: int
    underruns_server: int
    underruns_unknown: int
    stall_ms: float
    cancel_to_done_ms: Distribution
    audio_s: float

    @classmethod
    def from_result(cls, config: LoadConfig, result: RunResult) -> "LoadReport":
        records = result.records
        return cls(
            config=config,
            result=result,
            outcomes={
                str(outcome): sum(1 for record in records if record.outcome == outcome) for outcome in Outcome
            },
            cancels_sent=sum(1 for record in records if record.cancelled_by_client),
            first_audio_ms=Distribution.of(r.first_audio_ms for r in records if r.first_audio_ms is not None),
            gap_ms=Distribution.of(gap for record in records for gap in record.gaps_ms),
            underruns=sum(record.underruns for record in records),
            streams_with_underruns=sum(1 for record in records if record.underruns),
            underruns_text=sum(record.underruns_text for record in records),
            underruns_server=sum(record.underruns_server for record in records),
            underruns_unknown=sum(record.underruns_unknown for record in records),
            stall_ms=sum(record.stall_ms for record in records),
            cancel_to_done_ms=Distribution.of(
                r.cancel_to_done_ms for r in records if r.cancel_to_done_ms is not None
            ),
            audio_s=sum(record.audio_s for record in records),
        )

    @property
    def x_real_time(self) -> float:
        return self.audio_s / self.result.wall_s if self.result.wall_s > 0 else 0.0

    @property
    def violations(self) -> int:
        return self.result.violations.total()

    def to_table(self) -> str:
        config, result = self.config, self.result
        procs = config.worker_procs
        rows = [
            ("server", f"{config.url} ({result.server or 'no hello received'})"),
            (
                "load",
                f"{config.streams} streams over {config.connections} connections, {procs} "
                f"process{'es' if procs > 1 else ''}, {config.duration_s:g} s (ramp {config.ramp_s:g} s)",
            ),
            ("wall time", f"{result.wall_s:.1f} s"),
            ("connections opened", str(result.connections_opened)),
            ("streams started", str(len(result.records))),
            ("  completed", str(self.outcomes[Outcome.COMPLETE])),
            ("  cancelled", str(self.outcomes[Outcome.CANCELLED])),
            ("  errored", str(self.outcomes[Outcome.ERROR])),
            ("  unfinished", str(self.outcomes[Outcome.UNFINISHED])),
            ("  retried", str(self.outcomes[Outcome.RETRIED])),
            ("cancels sent", str(self.cancels_sent)),
            ("first audio (ms)", _distribution(self.first_audio_ms, ("p50", "p95", "p99", "max"))),
            ("inter-chunk gap (ms)", _distribution(self.gap_ms, ("p50", "p99", "max"))),
            (
                "underruns",
                f"{self.underruns} in {self.streams_with_underruns} streams ({self._causes()}; "
                f"stall {self.stall_ms / 1000:.2f} s, jitter buffer {config.jitter_ms:g} ms)",
            ),
            ("cancel to done (ms)", _distribution(self.cancel_to_done_ms, ("p50", "p99", "max"))),
            ("errors", _counts(result.errors)),
            ("protocol violations", _counts(result.violations)),
            ("audio received", f"{self.audio_s:.1f} s"),
            ("x real time", f"{self.x_real_time:.2f}"),
        ]
        width = max(len(name) for name, _ in rows) + 2
        return "\n".join(f"{name:<{width}}{value}" for name, value in rows)

    def _causes(self) -> str:
        causes = f"text pace: {self.underruns_text}, server: {self.underruns_server}"
        return causes + (f", unknown: {self.underruns_unknown}" if self.underruns_unknown else "")

    def to_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready values; the raw per-stream records too when there are few enough."""
        config, result = self.config, self.result
        settings = asdict(config)
        del settings["texts"], settings["token"]
        settings.update(texts=len(config.texts), token_set=config.token is not None)
        figures: dict[str, Any] = {
            "config": settings,
            "server": result.server,
            "percentiles": "nearest-rank",
            "wall_s": result.wall_s,
            "connections_opened": result.connections_opened,
            "streams": {"started": len(result.records), **self.outcomes, "cancels_sent": self.cancels_sent},
            "first_audio_ms": asdict(self.first_audio_ms),
            "inter_chunk_gap_ms": asdict(self.gap_ms),
            "underruns": {
                "count": self.underruns,
                "streams": self.streams_with_underruns,
                "text_pace": self.underruns_text,
                "server": self.underruns_server,
                "unknown": self.underruns_unknown,
                "stall_ms": self.stall_ms,
            },
            "cancel_to_done_ms": asdict(self.cancel_to_done_ms),
            "errors": dict(sorted(result.errors.items())),
            "violations": dict(sorted(result.violations.items())),
            "audio_s": self.audio_s,
            "x_real_time": self.x_real_time,
        }
        if len(result.records) <= RECORDS_IN_JSON_LIMIT:
            figures["records"] = [record.to_dict() for record in result.records]
        return figures


def _distribution(distribution: Distribution, names: tuple[str, ...]) -> str:
    if distribution.count == 0:
        return "-"
    values = "  ".join(f"{name} {getattr(distribution, name):.1f}" for name in names)
    return f"{values}  (n={distribution.count})"


def _counts(counts: dict[str, int]) -> str:
    if not counts:
        return "none"
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))
