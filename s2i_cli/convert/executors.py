"""Running shard tasks: in this process (`--workers 1`), on a forkserver pool of worker
processes (`--workers N`), or on a Dask cluster (`--dask N`, `--scheduler ADDRESS`). Each
yields (task, result or exception) as tasks finish, in any order."""
from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from .shard import Plan, ShardResult, ShardTask, convert_shard

Outcome = tuple[ShardTask, ShardResult | BaseException]


def run_inline(plan: Plan, tasks: list[ShardTask]) -> Iterator[Outcome]:
    """One task after another in this process (`--workers 1`)."""
    for task in tasks:
        try:
            yield task, convert_shard(plan, task)
        except Exception as exc:  # noqa: BLE001 - reported with its shard by the caller
            yield task, exc


def worker_context() -> multiprocessing.context.BaseContext:
    """Worker processes are forked by a forkserver (spawn where there is none): Numba's OpenMP
    layer aborts in children forked from a process that ran a parallel kernel. The server
    starts now and imports and warms what the tasks need (`worker_preload`) while this
    process goes on; every worker forked from it starts warm."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["s2i_cli.convert.worker_preload"])
    multiprocessing.forkserver.ensure_running()
    return context


def run_processes(plan: Plan, tasks: list[ShardTask], workers: int,
                  context: multiprocessing.context.BaseContext) -> Iterator[Outcome]:
    """Tasks on a pool of `workers` processes of `context` (`worker_context`). The pool's
    processes take about a second to start (the forkserver's imports and warm-up); this
    process, warm already and otherwise idle, converts the first shard meanwhile, on a
    thread (the kernels, zstd and file I/O release the GIL)."""
    here = ThreadPoolExecutor(max_workers=1)
    futures = {here.submit(convert_shard, plan, tasks[0]): tasks[0]}
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_adopt_environment,
                               initargs=(dict(os.environ),))
    try:
        futures |= {pool.submit(convert_shard, plan, task): task for task in tasks[1:]}
        for future in as_completed(futures):
            yield futures[future], _outcome(future)
    finally:  # a failure (or the caller stopping) cancels the tasks not started; running ones finish
        pool.shutdown(wait=True, cancel_futures=True)
        here.shutdown(wait=True)


def _adopt_environment(environment: dict[str, str]) -> None:
    """A worker's start: it dies with its parent (`worker_preload.die_with_parent`: after a
    `kill -9` of `s2i convert` no worker is left running), and takes this run's environment
    (AWS_* credentials, say): the forkserver it is forked from holds the environment of the
    first run in this process."""
    from .worker_preload import die_with_parent

    die_with_parent()
    os.environ.clear()
    os.environ.update(environment)


def _outcome(future: Future) -> ShardResult | BaseException:
    try:
        return future.result()
    except BrokenProcessPool:
        return BrokenProcessPool("a worker process died (killed, or out of memory)")
    except Exception as exc:  # noqa: BLE001 - reported with its shard by the caller
        return exc


def run_dask(plan: Plan, tasks: list[ShardTask], scheduler: str | None, dask_workers: int | None) -> Iterator[Outcome]:
    """The same tasks on a Dask distributed cluster: the one at `scheduler` (tcp://HOST:8786),
    or a local one of `dask_workers` single-threaded worker processes."""
    from distributed import Client, LocalCluster
    from distributed import as_completed as dask_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=dask_workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    client = Client(scheduler or cluster)
    futures = {client.submit(convert_shard, plan, task, pure=False): task for task in tasks}
    try:
        for future in dask_completed(futures):
            yield futures[future], _outcome(future)
    finally:
        client.cancel([f for f in futures if not f.done()])
        client.close()
        if cluster is not None:
            cluster.close()
