"""The shape of daemon/ (issue 21, DESIGN.md "Inside daemon/"): no import circles, counting
imports made only for type hints (a type-level circle is still two modules that cannot be
understood apart); a handful of modules at the top; no module over ~400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

DAEMON = Path(__file__).resolve().parents[2] / "daemon"
MAX_TOP_MODULES = 8
MAX_LINES = 400


def modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package's __init__)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Every import anywhere in a module (top level, in functions, under TYPE_CHECKING), in
    each form: `import a.b`, `from a.b import c` (c a module or a name), relative ones. An
    import of a.b.c also runs the __init__ of a.b (unless the importer is inside a.b: that
    package is being imported already), so it counts as an import of a.b as well."""
    mods = modules(root)
    top = root.name

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, (path, is_pkg) in mods.items():
        package = mod if is_pkg else mod.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {t for a in node.names if (t := known(a.name))}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    target = full if full in mods else known(source)
                    if target:
                        targets.add(target)
        own = {".".join(mod.split(".")[:i]) for i in range(1, mod.count(".") + 2)}
        for target in list(targets):
            pieces = target.split(".")
            targets |= {anc for i in range(1, len(pieces))
                        if (anc := ".".join(pieces[:i])) in mods and anc not in own
                        and anc != top}
        graph[mod] = targets - {mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_daemon_has_no_import_circles() -> None:
    found = cycles(import_graph(DAEMON))
    assert found == [], "import circles (break with a small Protocol, or move the type " \
                        f"where it belongs): {found}"


def test_few_modules_at_the_top_of_daemon() -> None:
    top = sorted(p.name for p in DAEMON.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, f"{len(top)} modules at the top of daemon/: {top}"


def test_no_module_over_400_lines() -> None:
    long = {str(p.relative_to(DAEMON)): n for p in DAEMON.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines (split along a seam): {long}"


def test_the_graph_sees_type_checking_relative_and_package_init_imports(tmp_path: Path) -> None:
    """The checks above can fail: circles hidden in each import form are found."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
        "b.py": "from .a import thing\n",  # relative: a <-> b
        "c.py": "def f():\n    import pkg.d\n",  # inside a function
        "d.py": "from pkg import c\n",  # a module named in `from pkg import`: c <-> d
        "sub/__init__.py": "from pkg.sub.heavy import Heavy\n",
        "sub/heavy.py": "from pkg import e\n",
        "sub/light.py": "X = 1\n",
        "e.py": "from pkg.sub.light import X\n",  # runs sub/__init__: e -> sub -> heavy -> e
        "f.py": "import pkg.a\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    found = cycles(import_graph(pkg))
    assert sorted(found) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.d"],
                             ["pkg.e", "pkg.sub", "pkg.sub.heavy"]]
