"""The import rule of docs/design.md §6, read from the source (ast, nothing imported): every
module of s2i_cli sits in one layer, and imports only from its own layer or the layers below
it; no two modules import each other, directly or round a circle. Imports inside functions and
under `if TYPE_CHECKING:` count too."""
from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "s2i_cli"

# The layer order, lowest first, declared once. A module's layer is its sub-package's; the
# modules at the top of s2i_cli (safe_text, files, ...) are the base layer, but `cli`,
# `__main__`, `api` and the package itself (its `__init__`, the API's front), which are the top.
LAYERS = ("base", "kernels", "encoder", "formats", "store", "views", "convert", "export", "train", "eval", "cli")
TOP = {"cli", "__main__", "api"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")[1:]  # below s2i_cli
    if not parts:
        return "cli"  # the package itself: the API's front (s2i_cli/__init__.py)
    if len(parts) == 1 and (PACKAGE / f"{parts[0]}.py").exists():
        return "cli" if parts[0] in TOP else "base"
    return parts[0]


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The s2i_cli modules `module` imports (absolute or relative, anywhere in the file);
    `from pkg import name` counts as an import of pkg.name when that is a module."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("s2i_cli")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("s2i_cli"):
                continue
            subs = {f"{target}.{a.name}" for a in node.names} & known
            found |= subs or {target}
            if subs and len(subs) < len(node.names):
                found.add(target)
    return {m for m in found if m != module}


@cache
def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports(m, p, known) & known for m, p in mods.items()}


def test_every_module_has_a_declared_layer():
    unknown = {m: layer(m) for m in modules() if layer(m) not in LAYERS}
    assert not unknown, f"declare these sub-packages in LAYERS (tests/test_layers.py, docs/design.md §6): {unknown}"


def test_no_import_reaches_up_a_layer():
    up = [f"{m} ({layer(m)}) imports {t} ({layer(t)})" for m, targets in graph().items() for t in sorted(targets)
          if LAYERS.index(layer(t)) > LAYERS.index(layer(m))]
    assert not up, "imports from a lower layer to a higher one:\n" + "\n".join(up)


def test_no_import_circle():
    g = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for t in sorted(g[m]):
            if state.get(t) == 1:
                return path[path.index(t):] + [t]
            if t not in state and (circle := visit(t)):
                return circle
        state[m] = 2
        path.pop()
        return None

    for m in sorted(g):
        if m not in state and (circle := visit(m)):
            raise AssertionError("import circle: " + " -> ".join(circle))


def floors(g: dict[str, set[str]]) -> int:
    """Import floors: modules on the longest import chain (a module importing nothing of
    s2i_cli is floor 1)."""
    memo: dict[str, int] = {}

    def floor(m: str) -> int:
        if m not in memo:
            memo[m] = 1 + max((floor(t) for t in g[m]), default=0)
        return memo[m]

    return max(floor(m) for m in g)


def test_the_layer_test_sees_a_circle_and_an_upward_import():
    g = graph()
    assert "s2i_cli.encoder.encoding" in g["s2i_cli.convert.flow"]  # relative imports are resolved
    assert LAYERS.index(layer("s2i_cli.views.show")) > LAYERS.index(layer("s2i_cli.encoder.skeletons"))
    assert layer("s2i_cli.safe_text") == "base" and layer("s2i_cli.cli") == "cli"
    assert floors(g) <= 12


def test_design_md_names_every_module():
    """§6's map: each file under its folder's line (`s2i_cli/x.py`, or `  x.py` below `s2i_cli/pkg/`)."""
    text = (PACKAGE.parent / "docs" / "design.md").read_text()
    section = text[text.index("## 6."):text.index("## 7.")]
    named, folder = set(), ""
    for line in section.splitlines():
        word = line.strip().split("  ")[0].strip()
        if line.startswith("s2i_cli/"):
            folder = word if word.endswith("/") else ""
            named.add(word)
        elif folder and line.startswith("  ") and word:
            named |= {folder + w.strip() for w in word.split(",")}
    missing = [str(p.relative_to(PACKAGE.parent)) for p in modules().values()
               if str(p.relative_to(PACKAGE.parent)) not in named
               and not (p.name == "__init__.py" and f"{p.parent.relative_to(PACKAGE.parent)}/" in named)]
    assert not missing, "docs/design.md §6 does not name: " + ", ".join(missing)


def test_no_test_module_imports_another():
    """Test modules share through conftest.py (fixtures) and the helper modules of tests/, never
    by importing each other (or conftest)."""
    tests = PACKAGE.parent / "tests"
    found = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [("." * node.level) + (node.module or "")] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name} imports {n}" for n in names
                      if n.split(".")[-1].startswith("test_") or n.split(".")[-1] == "conftest"]
    assert not found, "\n".join(found)
