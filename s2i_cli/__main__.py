"""`python -m s2i_cli`: the same commands as `s2i`."""
from .cli import app

app(prog_name="s2i")
