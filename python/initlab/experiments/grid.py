"""Grids of runs: serially, on local processes, or on a Dask cluster, with identical results."""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
from dataclasses import replace
from typing import Any, Dict, List, Optional, Sequence


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


def run_grid(specs: Sequence[RunSpec], data: Data, *, workers: Optional[int] = None,
             scheduler: Optional[str] = None, progress: Optional[bool] = None,
             desc: str = "runs") -> List[Dict[str, Any]]:
    """Run every spec on ``data``; results come back in the order of ``specs``.

    ``workers=N`` runs them on N local processes (spawned, so each starts clean);
    ``scheduler="local"`` starts a Dask ``LocalCluster`` on 127.0.0.1 (``workers`` processes, one
    thread each, 2 by default), any other string is the address of a Dask scheduler
    (``tcp://host:8786``) whose workers have initlab installed. Each task sets its own kernel thread
    count: its spec's ``threads``, else one thread for a small network (`SMALL_GEMM_MACS`) and the
    cores divided by the workers for a larger one (one thread on a remote cluster). The results are
    those of the serial run: every run is deterministic, on any thread count.
    """
    specs = list(specs)
    for spec in specs:
        _check_spec(spec)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if scheduler is not None:
        return _run_dask(specs, data, scheduler, workers, progress, desc)
    results: List[Optional[Dict[str, Any]]] = [None] * len(specs)
    if workers is None or workers == 1 or len(specs) <= 1:
        from .. import get_num_threads, set_num_threads
        specs = _threads_per_task(specs, data, 1)
        threads_before = get_num_threads()
        try:
            with _progress_bar(specs, progress, desc) as bar:
                for i, spec in enumerate(specs):
                    bar.set_postfix_str(f"{spec.label} {spec.init} seed {spec.seed}".strip())
                    results[i] = run_one(spec, data, on_epoch=lambda: bar.update())
                    _finish(bar, spec, results[i])
        finally:
            set_num_threads(threads_before)  # the caller's setting, whatever the runs used
        return results  # type: ignore[return-value]
    specs = _threads_per_task(specs, data, workers)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool, \
            _progress_bar(specs, progress, desc) as bar:
        futures = {pool.submit(run_one, spec, data): i for i, spec in enumerate(specs)}
        try:
            for future in concurrent.futures.as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                bar.update(results[i]["epochs_run"])
                _finish(bar, specs[i], results[i])
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results  # type: ignore[return-value]


def _run_dask(specs: List[RunSpec], data: Data, scheduler: str, workers: Optional[int],
              progress: Optional[bool], desc: str) -> List[Dict[str, Any]]:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ImportError("--scheduler needs Dask distributed: pip install 'initlab[distributed]'") from None
    if not isinstance(scheduler, str) or not scheduler:
        raise ValueError(f"scheduler must be 'local' or a scheduler address, got {scheduler!r}")
    cluster = None
    if scheduler == "local":
        n_workers = workers or 2
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
        specs = _threads_per_task(specs, data, n_workers)
    else:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from None
        specs = _threads_per_task(specs, data, 1_000_000)  # unknown machines: one thread per task
    try:
        data_future = client.scatter(data, broadcast=True)
        futures = [client.submit(run_one, spec, data_future, pure=False) for spec in specs]
        index = {future.key: i for i, future in enumerate(futures)}
        results: List[Optional[Dict[str, Any]]] = [None] * len(specs)
        with _progress_bar(specs, progress, desc) as bar:
            for future in as_completed(futures):
                i = index[future.key]
                results[i] = future.result()
                bar.update(results[i]["epochs_run"])
                _finish(bar, specs[i], results[i])
        return results  # type: ignore[return-value]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


