"""Grids of runs: serially, on local processes, or on a Dask cluster, with identical results."""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
from dataclasses import replace
from typing import Any, Dict, List, Optional, Sequence


from .record import RunLog, SweepInterrupted
from .runs import Data, RunSpec, _check_spec, run_one

# ================================================================================================
# grids: serial, local processes, Dask
# ================================================================================================

def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _progress_bar(specs: Sequence[RunSpec], progress: Optional[bool], desc: str):
    """A bar counting epochs over the whole grid (on a terminal, or when progress=True)."""
    from tqdm.auto import tqdm
    show = sys.stderr.isatty() if progress is None else bool(progress)
    return tqdm(total=sum(spec.epochs for spec in specs), desc=desc, unit="epoch", disable=not show,
                leave=False)


def _finish(bar, spec: RunSpec, run: Dict[str, Any]) -> None:
    """Count the epochs a run did not need (it stopped early) so the bar ends full."""
    bar.update(spec.epochs - run["epochs_run"])


# Below this many multiply-adds per layer and batch (batch x fan_in x fan_out), a GEMM is too small
# to gain from OpenMP threads, and on a busy machine the threads' synchronization can make it many
# times slower (measured on 2 shared cores: the default `initlab compare` took 15 s on 1 thread and
# 166 s on 2). Such runs use one thread; their cores are better used by --workers.
SMALL_GEMM_MACS = 1 << 21


def suggest_threads(widths: Sequence[int], batch_size: int, cores: Optional[int] = None) -> int:
    """Kernel threads for training a network of these widths: 1 when its largest layer's GEMM per
    batch is below `SMALL_GEMM_MACS` multiply-adds, else ``cores`` (default: all of them)."""
    macs = batch_size * max(a * b for a, b in zip(widths, widths[1:]))
    return 1 if macs < SMALL_GEMM_MACS else (cores or _cpu_count())


def _threads_per_task(specs: List[RunSpec], data: Data, workers: int) -> List[RunSpec]:
    """Give each task its share of the cores (one thread for small networks) unless set."""
    share = max(1, _cpu_count() // max(1, workers))
    return [spec if spec.threads is not None else
            replace(spec, threads=suggest_threads(spec.widths(data), spec.batch_size, share))
            for spec in specs]


def _ignore_sigint() -> None:
    """Worker processes leave Ctrl-C to the parent, which stops them (no traceback from each)."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_pool(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the worker processes now (runs in flight are lost)."""
    pool.shutdown(wait=False, cancel_futures=True)
    terminate = getattr(pool, "terminate_workers", None)      # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


def run_grid(specs: Sequence[RunSpec], data: Data, *, workers: Optional[int] = None,
             scheduler: Optional[str] = None, progress: Optional[bool] = None,
             desc: str = "runs", log: Optional["RunLog"] = None) -> List[Dict[str, Any]]:
    """Run every spec on ``data``; results come back in the order of ``specs``.

    ``workers=N`` runs them on N local processes (spawned, so each starts clean);
    ``scheduler="local"`` starts a Dask ``LocalCluster`` on 127.0.0.1 (``workers`` processes, one
    thread each, 2 by default), any other string is the address of a Dask scheduler
    (``tcp://host:8786``) whose workers have initlab installed. Each task sets its own kernel thread
    count: its spec's ``threads``, else one thread for a small network (`SMALL_GEMM_MACS`) and the
    cores divided by the workers for a larger one (one thread on a remote cluster). The results are
    those of the serial run: every run is deterministic, on any thread count.

    ``log`` (a `RunLog`, see `initlab.experiments.record`): runs it has recorded are not run
    again, and each run is appended to it as it finishes. Ctrl-C then raises `SweepInterrupted`
    (a KeyboardInterrupt) saying how many runs are kept.
    """
    specs = list(specs)
    for spec in specs:
        _check_spec(spec)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    results: List[Optional[Dict[str, Any]]] = [None] * len(specs)
    pending = list(range(len(specs)))
    if log is not None:
        pending = log.pending(specs)
        for i in set(range(len(specs))) - set(pending):
            results[i] = log.recorded(specs[i])

    def finished(i: int, run: Dict[str, Any]) -> None:
        results[i] = run if log is None else log.record(specs[i], run)

    try:
        if not pending:
            pass
        elif scheduler is not None:
            _run_dask(specs, pending, data, scheduler, workers, progress, desc, finished)
        elif workers is None or workers == 1 or len(pending) <= 1:
            _run_serial(specs, pending, data, progress, desc, finished)
        else:
            _run_processes(specs, pending, data, workers, progress, desc, finished)
    except KeyboardInterrupt:
        if log is None:
            raise
        raise SweepInterrupted(log.path, sum(r is not None for r in results), len(specs)) from None
    return results  # type: ignore[return-value]


def _run_serial(specs: List[RunSpec], pending: List[int], data: Data, progress: Optional[bool], desc: str,
                finished) -> None:
    from .. import get_num_threads, set_num_threads
    todo = _threads_per_task([specs[i] for i in pending], data, 1)
    threads_before = get_num_threads()
    try:
        with _progress_bar(todo, progress, desc) as bar:
            for i, spec in zip(pending, todo):
                bar.set_postfix_str(f"{spec.label} {spec.init} seed {spec.seed}".strip())
                run = run_one(spec, data, on_epoch=lambda: bar.update())
                _finish(bar, spec, run)
                finished(i, run)
    finally:
        set_num_threads(threads_before)  # the caller's setting, whatever the runs used


def _run_processes(specs: List[RunSpec], pending: List[int], data: Data, workers: int,
                   progress: Optional[bool], desc: str, finished) -> None:
    todo = _threads_per_task([specs[i] for i in pending], data, workers)
    context = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                                  initializer=_ignore_sigint)
    try:
        with _progress_bar(todo, progress, desc) as bar:
            futures = {pool.submit(run_one, spec, data): (i, spec) for i, spec in zip(pending, todo)}
            for future in concurrent.futures.as_completed(futures):
                i, spec = futures[future]
                run = future.result()
                bar.update(run["epochs_run"])
                _finish(bar, spec, run)
                finished(i, run)
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def _dashboard(cluster) -> str:
    link = getattr(cluster, "dashboard_link", None)
    return f"Dask dashboard: {link}" if link else "Dask dashboard: not available (pip install bokeh)"


def _run_dask(specs: List[RunSpec], pending: List[int], data: Data, scheduler: str, workers: Optional[int],
              progress: Optional[bool], desc: str, finished) -> None:
    """The pending runs as Dask tasks. A worker that dies (a lost machine, a killed process) loses
    only its runs in flight: the scheduler runs them again on another worker, and since every run
    is deterministic the results are the serial run's. A run that raises is a failure: counted on
    the bar, the others go on, and an error names the failed runs at the end."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ImportError("--scheduler needs Dask distributed: pip install 'initlab[distributed]'") from None
    if not isinstance(scheduler, str) or not scheduler:
        raise ValueError(f"scheduler must be 'local' or a scheduler address, got {scheduler!r}")
    from tqdm.auto import tqdm
    cluster = None
    if scheduler == "local":
        n_workers = workers or 2
        try:
            import bokeh  # noqa: F401  - the dashboard needs it
            dashboard: Optional[str] = "127.0.0.1:0"
        except ImportError:
            dashboard = None
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=dashboard)
        print(f"Dask LocalCluster: {n_workers} worker processes at {cluster.scheduler_address}; "
              + _dashboard(cluster if dashboard else None), file=sys.stderr, flush=True)
        client = Client(cluster)
        todo = _threads_per_task([specs[i] for i in pending], data, n_workers)
    else:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from None
        # unknown machines: one thread per task
        todo = _threads_per_task([specs[i] for i in pending], data, 1_000_000)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    failed: List[str] = []
    try:
        data_future = client.scatter(data, broadcast=True)
        futures = [client.submit(run_one, spec, data_future, pure=False) for spec in todo]
        index = {future.key: k for k, future in enumerate(futures)}
        with tqdm(total=len(specs), initial=len(specs) - len(pending), desc=desc, unit="run",
                  disable=not show, leave=False, mininterval=0) as bar:   # few updates: show each
            bar.set_postfix_str("failures 0")
            for future in as_completed(futures):
                k = index[future.key]
                if future.status == "error":
                    spec = todo[k]
                    failed.append(f"{spec.label} {spec.init} seed {spec.seed}: {future.exception()!r}".strip())
                    bar.set_postfix_str(f"failures {len(failed)}")
                else:
                    finished(pending[k], future.result())
                bar.update(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(pending)} runs failed on Dask: " + "; ".join(failed))
