"""Imported once by the forkserver that forks conversion workers (`executors.run_processes`), so
every worker starts with what the server holds: numpy, numba, zarr and the readers imported,
and Numba's compiler context set up by loading (or, on a cold cache, compiling) the
one-thread encoding kernels the tasks use. Each worker would otherwise spend ~0.4 s on that
at its first kernel call. Only one-thread kernels run here: a process that has run a
parallel (OpenMP) kernel cannot fork (../shared/stack-notes.md, docs/design.md §7)."""
import numpy as np

from s2i_cli.convert import shard  # noqa: F401 - the task's modules, imported once for every worker
from s2i_cli.encoder.encoding import Encoding, encode
from s2i_cli.encoder.skeletons import NTU25


def _warm() -> None:
    frames = np.zeros((2, 2, NTU25.num_joints, 3), dtype=np.float32)
    encode([frames], [1], Encoding(NTU25, "parts", 16, "stacked"), parallel=False)


_warm()
