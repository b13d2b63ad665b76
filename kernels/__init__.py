"""Numba kernels of s2i (import name `s2i_kernels`): parse, select, encode.

Arrays in, arrays out: nothing here imports s2i_cli, zarr or torch."""
