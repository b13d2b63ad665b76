"""Numba kernels of s2i (`s2i_cli.kernels`): parse, select, encode.

Arrays in, arrays out: nothing here imports the rest of s2i_cli, zarr or torch."""
