"""Imported once by the forkserver that forks conversion workers (`executors.run_processes`), so
every worker starts with what the server holds: numpy, numba, zarr and the readers imported,
and Numba's compiler context set up by loading (or, on a cold cache, compiling) the
one-thread encoding kernels the tasks use. Each worker would otherwise spend ~0.4 s on that
at its first kernel call. Only one-thread kernels run here: a process that has run a
parallel (OpenMP) kernel cannot fork (../shared/stack-notes.md, docs/design.md §7).

The server and every worker also die with their parent (`die_with_parent`): a `kill -9` of
`s2i convert` cannot be caught, so the children must notice on their own (issue 19)."""
import ctypes
import os
import signal
import sys
import threading
import time

import numpy as np

from s2i_cli.convert import shard  # noqa: F401 - the task's modules, imported once for every worker
from s2i_cli.encoder.encoding import Encoding, encode
from s2i_cli.encoder.skeletons import NTU25

PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCH_SECONDS = 0.5  # how often the fallback watchdog looks at the parent


def _parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies (prctl PR_SET_PDEATHSIG): the
    kernel does it at once, whatever this process is doing. False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        if os.getppid() != parent:  # re-parented: the parent is gone
            os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent(watchdog: bool = True) -> None:
    """End this process when its parent dies, even by SIGKILL: the parent-death signal on
    Linux, and (`watchdog`, also where prctl exists) a daemon thread that polls `os.getppid()`
    every WATCH_SECONDS and kills this process once it has been re-parented. A parent that
    died before the signal was set is caught by the check right after."""
    parent = os.getppid()
    armed = _parent_death_signal()
    if parent == 1 or (armed and os.getppid() != parent):
        os.kill(os.getpid(), signal.SIGKILL)
    if watchdog or not armed:
        threading.Thread(target=_watch, args=(parent,), daemon=True, name="s2i-parent-watch").start()


def _warm() -> None:
    frames = np.zeros((2, 2, NTU25.num_joints, 3), dtype=np.float32)
    encode([frames], [1], Encoding(NTU25, "parts", 16, "stacked"), parallel=False)


# Imported as the forkserver's preload (and by a spawned worker): the server dies with `s2i
# convert`. No watchdog thread in the server where prctl works: it forks the workers, and a
# process that forks is best left with one thread (each worker starts its own watchdog).
die_with_parent(watchdog=False)
_warm()
