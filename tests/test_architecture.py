"""The architecture, checked: the import graph of the product has no cycles and flows one way.

Every module's imports are read with :mod:`ast`, imports inside functions
included, so a cycle cannot hide behind a deferred import.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ("model", "hw", "sim")
#: The public API's facade: a package whose ``__init__`` re-exports ``sim.api`` (``import vqe``).
FACADE = ("vqe",)
PROJECT = PRODUCT + FACADE + ("scripts",)

#: What each package may import from the project (besides itself).  Longest prefix wins.
ALLOWED = {
    "model": (),
    "model.contract": (),
    "model.codecs": ("model.contract",),
    "model.golden": ("model.contract", "model.codecs"),
    "model.program": ("model.contract", "model.codecs"),
    "model.nets": ("model.contract", "model.codecs"),
    "model.lvq": ("model.contract", "model.nets"),
    "model.compress": ("model.contract", "model.codecs", "model.golden", "model.program", "model.nets", "model.lvq"),
    "hw": ("model.contract", "model.codecs"),
    "sim": ("model", "hw"),
    "scripts": ("model", "hw", "sim"),
    "vqe": ("model", "hw", "sim"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    mods = {}
    for top in PROJECT:
        for path in sorted((REPO / top).rglob("*.py")):
            mods[module_name(path)] = path
    return mods


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules ``name`` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # ``from pkg import module`` imports the module, ``from module import name`` the module.
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        else:
            continue
        for t in targets:
            if t.split(".")[0] in PROJECT:
                while t not in modules and "." in t:
                    t = t.rpartition(".")[0]
                if t in modules and t != name:
                    found.add(t)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
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
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def rule_for(module: str) -> tuple[str, tuple[str, ...]]:
    keys = [k for k in ALLOWED if module == k or module.startswith(k + ".")]
    assert keys, f"{module}: no import rule (add its package to ALLOWED)"
    key = max(keys, key=len)
    return key, ALLOWED[key]


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_imports_flow_one_way(graph):
    bad = []
    for module, deps in sorted(graph.items()):
        own, allowed = rule_for(module)
        for dep in sorted(deps):
            if not within(dep, own) and not any(within(dep, a) for a in allowed):
                bad.append(f"{module} -> {dep}")
    assert bad == []


def test_hw_imports_only_the_contract_and_codecs(graph):
    bad = [f"{m} -> {d}" for m, deps in graph.items() if within(m, "hw")
           for d in deps if not (within(d, "hw") or within(d, "model.contract") or within(d, "model.codecs"))]
    assert bad == []


def test_no_product_module_imports_an_experiment(graph):
    bad = [f"{m} -> {d}" for m, deps in graph.items() if m.split(".")[0] in PRODUCT
           for d in deps if within(d, "scripts")]
    assert bad == []


def test_packages_say_what_they_hold_and_import_nothing():
    for top in PRODUCT:
        for init in sorted((REPO / top).rglob("__init__.py")):
            tree = ast.parse(init.read_text())
            assert ast.get_docstring(tree), f"{init.relative_to(REPO)} has no docstring"
            if init.parent.name != "zoo":  # the zoo's registry lives in its package, as before
                assert not [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
                            and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")], \
                    f"{init.relative_to(REPO)} imports: package __init__ files hold no imports"


def test_the_checker_sees_cycles_and_deferred_imports(tmp_path):
    """The checks above can fail: a cycle through a function-level import is found."""
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [["a", "b", "c"]]
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from model.contract import layout\n    import hw.engine\n")
    mods = {"model.contract.layout": src, "hw.engine": src, "x.m": src}
    assert imports_of("x.m", src, mods) == {"model.contract.layout", "hw.engine"}
