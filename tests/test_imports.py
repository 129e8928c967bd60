"""The house's import rules, read from the source: no import circle, the probe never imports the
engine, the hot path never imports the generator.

Every module of the installed touchpoint packages (the folders pyproject.toml's package-dir maps) is
parsed with ast; every import counts, those inside functions too (a lazy import is still a
dependency, only a later one). `from a.b import c` where a.b.c is a module is an import of a.b.c.
"""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ("touchpoint.probe.synth",)
# May import the generator: the commands that run it and the demo that shows it.
GENERATOR_USERS = ("touchpoint.control.cli.synth", "touchpoint.control.cli.demo", "touchpoint.control.demo")


def under(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def modules() -> dict:
    """Module name -> (source path, is a package), for every .py file of the packages pyproject lists."""
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    out = {}
    for pkg in setup["packages"]:
        folder = ROOT / setup["package-dir"].get(pkg, pkg.replace(".", "/"))
        for path in sorted(folder.glob("*.py")):
            name = pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"
            out[name] = (path, path.stem == "__init__")
    return out


def imports_of(source: str, module: str, is_package: bool, known) -> set:
    """The touchpoint modules `source` (the text of `module`) imports, relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                up = parts[:len(parts) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:         # `import a.b.c` of a name that is no module: its package
                t = t.rpartition(".")[0]
            if t:
                found.add(t)
    return found


def graph() -> dict:
    mods = modules()
    return {m: imports_of(path.read_text(), m, pkg, mods) - {m} for m, (path, pkg) in mods.items()}


def find_cycle(g: dict) -> list | None:
    """One import circle of g (module -> modules it imports) as [a, b, ..., a], or None."""
    state = {}                                  # 1: on the current path, 2: done
    path = []

    def visit(m):
        state[m] = 1
        path.append(m)
        for n in sorted(g.get(m, ())):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (c := visit(n)):
                return c
        path.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state and (c := visit(m)):
            return c
    return None


def generator_reached(g: dict, start: str) -> list | None:
    """A chain start -> ... -> generator module through hot modules only, or None."""
    seen, todo = {start}, [[start]]
    while todo:
        chain = todo.pop()
        for n in sorted(g.get(chain[-1], ())):
            if under(n, GENERATOR):
                return chain + [n]
            if n not in seen and not under(n, GENERATOR_USERS):
                seen.add(n)
                todo.append(chain + [n])
    return None


def test_the_walk_finds_the_house():
    g = graph()
    assert {"touchpoint.control.cli", "touchpoint.control.cli.group", "touchpoint.control.ctl",
            "touchpoint.control.ctlclient", "touchpoint.probe.decode"} <= set(g)
    assert "touchpoint.control.cli.group" in g["touchpoint.control.cli"]
    assert "touchpoint.control.ctlclient" in g["touchpoint.control.demo"]


def test_no_import_circle():
    cycle = find_cycle(graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_probe_never_imports_the_engine():
    bad = sorted(f"{m} imports {n}" for m, deps in graph().items()
                 if under(m, ("touchpoint.probe",)) and not under(m, GENERATOR)
                 for n in deps if under(n, ("touchpoint.control",)))
    assert not bad, bad


def test_the_hot_path_never_imports_the_generator():
    g = graph()
    bad = [" -> ".join(c) for m in sorted(g) if not under(m, GENERATOR + GENERATOR_USERS)
           if (c := generator_reached(g, m))]
    assert not bad, bad


# --- the checks themselves fail when they should ---------------------------------------------------

def test_find_cycle_reports_the_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_generator_reached_through_a_hot_module_only():
    g = {"touchpoint.control.engine": {"touchpoint.control.helper"},
         "touchpoint.control.helper": {"touchpoint.probe.synth"},
         "touchpoint.control.cli": {"touchpoint.control.cli.synth"},
         "touchpoint.control.cli.synth": {"touchpoint.probe.synth"}}
    assert generator_reached(g, "touchpoint.control.engine") == [
        "touchpoint.control.engine", "touchpoint.control.helper", "touchpoint.probe.synth"]
    assert generator_reached(g, "touchpoint.control.cli") is None


def test_imports_resolve_relative_and_submodule_names():
    known = {"touchpoint.control", "touchpoint.control.cli", "touchpoint.control.cli.render",
             "touchpoint.control.ctl", "touchpoint.probe", "touchpoint.probe.record"}
    src = ("from .render import mask_digits\n"
           "from .. import ctl\n"
           "def f():\n    from touchpoint.probe.record import Kind\n"
           "import touchpoint.probe.record.nothing\n")
    assert imports_of(src, "touchpoint.control.cli.lists", False, known) == {
        "touchpoint.control.cli.render", "touchpoint.control.ctl", "touchpoint.probe.record"}
    assert imports_of("from . import render\n", "touchpoint.control.cli", True, known) == {
        "touchpoint.control.cli.render"}
