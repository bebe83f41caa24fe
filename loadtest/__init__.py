"""voxwire's load generator: many concurrent streams against one server, with the protocol checked.

From Python: ``report = await run_load(LoadConfig(url=..., streams=...))``, then ``report.to_table()`` or
``report.to_dict()``. From the shell: ``voxwire loadtest --help`` (or ``python -m voxwire.loadtest``).
"""

from .config import LoadConfig, TokenPlacement
from .report import LoadReport
from .results import Outcome, RunResult, StreamRecord, Violation
from .runner import run_load

__all__ = [
    "LoadConfig",
    "LoadReport",
    "Outcome",
    "RunResult",
    "StreamRecord",
    "TokenPlacement",
    "Violation",
    "run_load",
]
