"""Layering: every jscore module imports, the module import graph has no cycle (lazy imports inside
functions included), and the ground floor (special functions, store, fits, environment) imports
nothing above it."""

import ast
import importlib
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "jscore"


def _name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(module: str) -> set[str]:
    """jscore modules that ``module`` imports anywhere in its source (top level or in functions);
    ``from pkg import sub`` counts as importing the submodule ``pkg.sub`` when there is one."""
    path = MODULES[module]
    base = module if path.name == "__init__.py" else module.rpartition(".")[0]
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            deps.update(a.name for a in node.names if a.name.split(".")[0] == "jscore")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                b = base
                for _ in range(node.level - 1):
                    b = b.rpartition(".")[0]
                target = f"{b}.{node.module}" if node.module else b
            elif (node.module or "").split(".")[0] == "jscore":
                target = node.module
            else:
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                deps.add(sub if sub in MODULES else target)
    return {d for d in deps if d in MODULES and d != module}


GRAPH = {m: _imports(m) for m in MODULES}


def _cycles(graph: dict) -> list[list[str]]:
    """Strongly connected components with more than one module, or a self-loop (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_planted_cycle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(g) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_known_edges():
    assert "jscore.special" in GRAPH["jscore.targets.sphere"]
    assert "jscore.sweeps.spec" in GRAPH["jscore.sweeps.lowerbound"]
    assert "jscore.store" in GRAPH["jscore.sweeps.store"]
    assert len(MODULES) > 60


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize("module", ["jscore.special", "jscore.store", "jscore.fit", "jscore.env",
                                    "jscore.compiles", "jscore.config"])
def test_ground_floor_imports_nothing_above_it(module):
    assert GRAPH[module] <= {"jscore"}, GRAPH[module]


def test_targets_do_not_import_the_lab_or_the_experiments():
    for m, deps in GRAPH.items():
        if m.startswith("jscore.targets"):
            assert not {d for d in deps if d.startswith(("jscore.lowerbound", "jscore.sweeps"))}, m


def test_the_lab_does_not_import_the_experiment_layer():
    """lowerbound/ is mathematics and simulation: drivers, files and plots live in sweeps/ and cli/."""
    for m, deps in GRAPH.items():
        if m.startswith("jscore.lowerbound"):
            assert not {d for d in deps if d.startswith(("jscore.sweeps", "jscore.cli"))}, m


@pytest.mark.parametrize("module", sorted(set(MODULES) - {"jscore.__main__"}))  # __main__ runs the CLI
def test_every_module_imports(module):
    importlib.import_module(module)


def test_bessel_shim_re_exports_the_special_functions():
    from jscore import special
    from jscore.lowerbound import bessel

    for name in special.__all__:
        assert getattr(bessel, name) is getattr(special, name)


def _outside_imports(module: str) -> set[str]:
    """Top-level names of every module ``module`` imports (jscore or not), anywhere in its source."""
    names = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module or "")
    return names


@pytest.mark.parametrize("module", ["jscore.lowerbound.levels", "jscore.lowerbound.rounds",
                                    "jscore.lowerbound.schedule_certificate"])
def test_lab_modules_neither_write_files_nor_draw(module):
    """Files and figures of these labs live in jscore.sweeps (levels_lab, rounds_lab, certificate)."""
    assert not GRAPH[module] & {"jscore.store", "jscore.plot"}, GRAPH[module]
    assert not {n for n in _outside_imports(module) if n.split(".")[0] == "matplotlib"}
    calls = {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
             for node in ast.walk(ast.parse(MODULES[module].read_text()))
             if isinstance(node, ast.Call)}
    assert not calls & {"open", "savefig", "write_text", "write_bytes", "makedirs"}, calls
