"""The package's modules import each other without cycles (module-level imports)."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "charrnn"


def module_imports(path: Path) -> set[str]:
    """charrnn modules imported at the top level of `path` (imports inside functions are the
    deliberate, lazy exceptions and are not counted)."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
    return out


def test_no_import_cycles():
    graph = {p.stem: module_imports(p) for p in PKG.glob("*.py") if p.stem != "__init__"}
    done, path = set(), []

    def visit(m):
        if m in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
        if m in done or m not in graph:
            return
        path.append(m)
        for n in sorted(graph[m]):
            visit(n)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)
    assert "model" not in graph["sample"] and "model" not in graph["checkpoint"]


def test_module_imports_counts_only_top_level_ones(tmp_path):
    (tmp_path / "a.py").write_text("from . import b\n")
    assert module_imports(tmp_path / "a.py") == {"b"}
    (tmp_path / "c.py").write_text("def f():\n    from .d import x\n")
    assert module_imports(tmp_path / "c.py") == set()


def test_the_readme_module_map_matches_the_code():
    readme = (PKG.parent / "README.md").read_text()
    rows = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and cells[0].endswith(".py`"):
            imports = set() if cells[2] == "nothing" else {m.strip() for m in cells[2].split(",")}
            rows[cells[0].strip("`")[:-3]] = imports
    code = {p.stem: module_imports(p) for p in PKG.glob("*.py")
            if p.stem not in ("__init__", "__main__")}
    assert set(rows) == set(code), "modules missing from (or extra in) the README's map"
    for name, imports in code.items():
        assert rows[name] == imports, f"README's map: {name}.py imports {sorted(imports)}"
