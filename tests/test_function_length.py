"""No function in the package is over 60 lines (issue 20), except the ones listed here: the
Numba state machines (kernels: one loop over the bytes, each state a branch) and the drawing
code (show.py: one figure, laid out top to bottom). A new long function fails this test;
split it, or, if it is one of those kinds, add it here with the reason."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 60
PACKAGES = ("s2i_cli",)  # the kernels live in s2i_cli/kernels
# file name -> functions allowed over the limit, and why
EXEMPT = {
    "ntu_parse.py": {"parse_ntu": "Numba state machine over the .skeleton text"},
    "show.py": {"render_sample": "drawing code: the PNG's figure, top to bottom",
                "render_animation": "drawing code: the animation's figure and its frames"},
}


def long_functions(limit: int = LIMIT) -> list[tuple[str, str, int]]:
    """(file, function, lines) of every function or method longer than `limit` lines,
    decorators excluded, docstring included."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else []:
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > limit:
                        found.append((str(path.relative_to(ROOT)), node.name, lines))
    return found


def test_no_function_is_over_60_lines():
    over = [(f, name, n) for f, name, n in long_functions()
            if name not in EXEMPT.get(Path(f).name, {})]
    assert not over, "functions over 60 lines: " + ", ".join(f"{f}:{name} ({n})" for f, name, n in over)


@pytest.mark.parametrize("limit", [LIMIT])
def test_the_exemptions_are_still_long(limit):
    """An exempt function that got short loses its exemption (the list stays honest)."""
    long = {(Path(f).name, name) for f, name, _ in long_functions(limit)}
    stale = [(f, name) for f, names in EXEMPT.items() for name in names if (f, name) not in long]
    assert not stale, f"exempt but no longer over {limit} lines (remove them from EXEMPT): {stale}"


if __name__ == "__main__":
    for f, name, n in sorted(long_functions(), key=lambda t: -t[2]):
        print(f"{n:4d}  {f}:{name}")
