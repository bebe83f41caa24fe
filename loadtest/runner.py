"""Run a load: in this process's event loop, or spread over worker processes whose raw results are merged.

With `procs > 1`, each worker process (multiprocessing "spawn") runs its own asyncio loop over its share of
the connections (`plan_connections`). The workers wait at a barrier until all have started, so that their
ramps line up; each sends a progress snapshot once a second and its raw `RunResult` at the end, through one
queue. The parent merges the raw results (never per-process percentiles) into one report.
"""

import asyncio
import multiprocessing
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import TextIO

from .client import RunContext, run_connection
from .config import LoadConfig, plan_connections
from .progress import PROGRESS_INTERVAL_S, ProgressBoard, ProgressSnapshot
from .report import LoadReport
from .results import RunResult, merge_results

BACKSTOP_S = 30.0
"""Beyond `duration_s + grace_s`, how long a process may take to close its connections before it is cut off
(every wait inside is bounded already; this bounds the unforeseen)."""
WORKER_START_TIMEOUT_S = 120.0
"""How long the parent waits for all worker processes to start (spawn imports the package afresh)."""
WORKER_EXIT_TIMEOUT_S = 10.0


async def run_load(config: LoadConfig, *, progress: TextIO | None = None) -> LoadReport:
    """Run the load `config` describes and report it; a progress line goes to `progress` when given.

    With `config.procs == 1` (or a single connection) the load runs in the calling event loop; otherwise
    worker processes run it while this coroutine waits in a thread.
    """
    board = ProgressBoard(progress) if progress is not None else None
    if config.worker_procs == 1:
        on_progress = None if board is None else _render_to(board, 0)
        result = await run_process(config, 0, on_progress)
    else:
        result = await asyncio.to_thread(_run_workers, config, board)
    if board is not None:
        board.finish()
    return LoadReport.from_result(config, result)


def _render_to(board: ProgressBoard, proc: int) -> Callable[[ProgressSnapshot], None]:
    def render(snapshot: ProgressSnapshot) -> None:
        board.update(proc, snapshot)
        board.render()

    return render


async def run_process(
    config: LoadConfig, proc: int, on_progress: Callable[[ProgressSnapshot], None] | None = None
) -> RunResult:
    """Run worker `proc`'s share of the load in the running event loop; its raw results."""
    ctx = RunContext.starting_now(config)
    reporter = None
    if on_progress is not None:
        reporter = asyncio.create_task(_report_progress(ctx, on_progress), name="loadtest-progress")
    try:
        async with asyncio.timeout(config.duration_s + config.grace_s + BACKSTOP_S):
            await asyncio.gather(*(run_connection(ctx, plan) for plan in plan_connections(config, proc)))
    except TimeoutError:
        ctx.result.errors["client:aborted"] += 1
    finally:
        if reporter is not None:
            reporter.cancel()
    ctx.result.wall_s = ctx.now()
    if on_progress is not None:
        on_progress(ctx.snapshot())
    return ctx.result


async def _report_progress(ctx: RunContext, on_progress: Callable[[ProgressSnapshot], None]) -> None:
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL_S)
        on_progress(ctx.snapshot())


def _worker_main(config: LoadConfig, proc: int, messages: Queue, barrier: Barrier) -> None:
    """A worker process: wait for the others, run its share, send progress and then its result."""
    barrier.wait()

    def send_progress(snapshot: ProgressSnapshot) -> None:
        messages.put(("progress", proc, snapshot))

    try:
        result = asyncio.run(run_process(config, proc, send_progress))
    except BaseException:
        messages.put(("failed", proc, traceback.format_exc()))
        raise
    messages.put(("result", proc, result))


def _run_workers(config: LoadConfig, board: ProgressBoard | None) -> RunResult:
    """Run the load over `config.worker_procs` processes and merge their raw results (blocking)."""
    context = multiprocessing.get_context("spawn")
    count = config.worker_procs
    messages = context.Queue()
    barrier = context.Barrier(count + 1)
    workers = [
        context.Process(
            target=_worker_main,
            args=(config, proc, messages, barrier),
            name=f"voxwire-loadtest-{proc}",
            daemon=True,
        )
        for proc in range(count)
    ]
    for worker in workers:
        worker.start()
    try:
        barrier.wait(timeout=WORKER_START_TIMEOUT_S)
    except threading.BrokenBarrierError:
        _stop(workers)
        raise RuntimeError(
            f"the {count} worker processes did not all start within {WORKER_START_TIMEOUT_S:g} s"
        ) from None
    results, errors = _collect(config, workers, messages, board)
    _stop(workers)
    merged = merge_results(results)
    merged.errors.update(errors)
    return merged


def _collect(
    config: LoadConfig, workers: Sequence[BaseProcess], messages: Queue, board: ProgressBoard | None
) -> tuple[list[RunResult], dict[str, int]]:
    """Read progress and results until every worker has answered, died, or run out of time.

    A worker that exits without a result is counted as `client:worker_failed` (its traceback, when it sent
    one, goes to stderr); one still running at the deadline as `client:worker_lost`.
    """
    deadline = time.monotonic() + config.duration_s + config.grace_s + BACKSTOP_S + WORKER_EXIT_TIMEOUT_S
    results: dict[int, RunResult] = {}
    failed: set[int] = set()
    exited_unanswered: set[int] = set()
    while len(results) + len(failed) < len(workers) and time.monotonic() < deadline:
        try:
            kind, proc, payload = messages.get(timeout=PROGRESS_INTERVAL_S)
        except queue.Empty:
            # A worker seen dead twice in a row without an answer has died: its last message, if it sent
            # one before exiting, would have been read in between.
            for proc, worker in enumerate(workers):
                if proc in results or proc in failed or worker.is_alive():
                    continue
                if proc in exited_unanswered:
                    failed.add(proc)
                exited_unanswered.add(proc)
            continue
        if kind == "progress" and board is not None:
            board.update(proc, payload)
            board.render()
        elif kind == "result":
            results[proc] = payload
        elif kind == "failed":
            print(f"loadtest worker {proc} failed:\n{payload}", file=sys.stderr)
            failed.add(proc)
    lost = len(workers) - len(results) - len(failed)
    errors = {"client:worker_failed": len(failed), "client:worker_lost": lost}
    return [results[proc] for proc in sorted(results)], {code: n for code, n in errors.items() if n}


def _stop(workers: Sequence[BaseProcess]) -> None:
    for worker in workers:
        worker.join(timeout=WORKER_EXIT_TIMEOUT_S)
        if worker.is_alive():
            worker.terminate()
            worker.join()
