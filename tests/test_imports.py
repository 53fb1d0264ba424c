"""The import graph of `pipeline/`, read from the source (every import, lazy ones inside functions
included): no import cycle, none through the lab taken as one piece either, the lab's image side
never imports its classroom, and render asks the lab one question only."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAB = "pipeline.lab"


@cache
def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _resolve(name: str) -> str | None:
    """The pipeline module `name` is, or is inside (`pipeline.errors.BadInput` -> `pipeline.errors`)."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


def imports(source: str, where: str = "<source>") -> set[str]:
    """The pipeline modules `source` imports (`from pipeline.lab import x` imports pipeline.lab.x)."""
    targets: set[str | None] = set()
    for node in ast.walk(ast.parse(source, where)):
        if isinstance(node, ast.Import):
            targets.update(_resolve(a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{where}: relative import"
            targets.update(_resolve(f"{node.module}.{a.name}") for a in node.names)
    return {t for t in targets if t}


@cache
def graph() -> dict[str, frozenset[str]]:
    """module -> the pipeline modules it imports, lazy imports inside functions included."""
    return {m: frozenset(imports(p.read_text(), str(p)) - {m}) for m, p in modules().items()}


def part(module: str) -> str:
    """The lab as one node, every other module as itself."""
    return LAB if module == LAB or module.startswith(LAB + ".") else module


def cycles(edges: dict[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_every_import() -> None:
    source = ("from pipeline.lab import labels\nfrom pipeline.errors import BadInput\nimport os\n"
              "def f():\n    from pipeline.lab.image import tag\n    import pipeline.slugs\n")
    assert imports(source) == {"pipeline.lab.labels", "pipeline.errors", "pipeline.lab.image.tag", "pipeline.slugs"}


def test_a_cycle_is_seen() -> None:
    assert cycles({"a": ["b"], "b": ["c", "a"], "c": [], "d": ["a"]}) == [["a", "b"]]
    assert cycles({"a": ["b"], "b": ["c"], "c": []}) == []


def test_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_no_cycle_through_the_lab() -> None:
    # The lab as one node: nothing it imports may lead back into it (no lab -> x -> lab zigzag).
    collapsed: dict[str, set[str]] = {}
    for module, targets in graph().items():
        collapsed.setdefault(part(module), set()).update(part(t) for t in targets if part(t) != part(module))
    assert [c for c in cycles(collapsed) if LAB in c] == []


def test_the_image_side_never_imports_the_classroom() -> None:
    image = {m: sorted(t for t in ts if t.startswith(f"{LAB}.classroom"))
             for m, ts in graph().items() if m.startswith(f"{LAB}.image")}
    assert image and all(not ts for ts in image.values()), image


def test_render_asks_the_lab_one_question() -> None:
    # A workshop's spec and image tag, from one pure function of the image side; nothing else.
    assert {t for t in graph()["pipeline.render"] if part(t) == LAB} == {f"{LAB}.image.tag"}
