"""The import structure stays one-way, in the order of the data flow (DESIGN §3).

Read from the code with ``ast`` (no module is imported): every import of a wsal module, at any
depth, must go to the same or an earlier layer of :data:`LAYERS`; no group of modules may import
each other in a circle; wsal modules are imported at module top, except the few lazy imports
listed in :data:`LAZY` (each for a heavy optional dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "wsal"

#: bottom to top: a module may import its own layer and the layers before it
LAYERS = (
    "errors",
    "atomic",
    "configs",
    "targets",
    "tube_ops",
    "structures",
    "runs",
    "loggers",
    "callbacks",
    "data",
    "evaluation",
    "supervision",
    "detection",
    "linking",  # DESIGN §3's order: the tracker takes its network from the composing code
    "nets",
    "features",
    "models",
    "reranking",
    "viz",
    "report",
    "app",
    "predict",  # wsal/predict.py: the `python -m wsal.predict` launcher, above everything
)

#: function-local imports of wsal modules that are allowed, with why
LAZY = {
    ("wsal.features", "wsal.features.cnn"): "CNNExtractor pulls in torch + Lightning on demand",
    ("wsal.detection.backends", "wsal.detection.model"): "torchvision models, only to detect",
    ("wsal.detection.backends", "wsal.detection.predict"): "Lightning, only to detect",
    (
        "wsal.predict",
        "wsal.app.predict",
    ): "torch: ``python -m wsal.predict --help` answers without it",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports(path: Path, mod: str, known: set[str]) -> list[tuple[str, bool]]:
    """``(imported wsal module, at module top)`` for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    for n in tree.body:  # imports under `if TYPE_CHECKING:` at module top count as top
        if isinstance(n, ast.If):
            top |= {id(c) for c in n.body}
    is_pkg = path.name == "__init__.py"
    out: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from a.b import c`: module a.b.c when there is one, else a.b (c is a name in it)
            names = [f"{base}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            item = (name, id(node) in top)
            if name and name != mod and name.split(".")[0] == "wsal" and item not in out:
                out.append(item)
    return out


def layer(mod: str) -> int:
    parts = mod.split(".")
    if len(parts) == 1:  # the package itself
        return -1
    return LAYERS.index(parts[1])


def graph() -> dict[str, list[tuple[str, bool]]]:
    mods = modules()
    known = set(mods)
    return {m: imports(p, m, known) for m, p in mods.items()}


def test_every_module_has_a_layer():
    unknown = sorted(m for m in modules() if m != "wsal" and m.split(".")[1] not in LAYERS)
    assert not unknown, f"modules outside every layer of LAYERS: {unknown}"


def test_no_import_runs_back_up_the_data_flow():
    back = [
        f"{m} ({m.split('.')[1]}) imports {t} ({t.split('.')[1]})"
        for m, targets in graph().items()
        for t, _ in targets
        if m != "wsal" and t != "wsal" and layer(t) > layer(m)
    ]
    assert not back, "imports against the data flow:\n" + "\n".join(sorted(set(back)))


def test_lazy_list_has_no_stale_entries():
    """Each allowed lazy import still exists (a stale entry would admit a future one unread)."""
    lazy = {(m, t) for m, ts in graph().items() for t, at_top in ts if not at_top}
    stale = sorted(set(LAZY) - lazy)
    assert not stale, f"LAZY entries no module imports lazily any more: {stale}"


def test_no_circles():
    g = {m: {t for t, _ in ts} for m, ts in graph().items()}
    seen: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles: list[list[str]] = []

    def visit(v: str, stack: list[str]) -> None:
        seen[v] = 1
        stack.append(v)
        for w in sorted(g.get(v, ())):
            if seen.get(w) == 1:
                cycles.append(stack[stack.index(w) :] + [w])
            elif w not in seen:
                visit(w, stack)
        stack.pop()
        seen[v] = 2

    for v in sorted(g):
        if v not in seen:
            visit(v, [])
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_wsal_imports_are_at_module_top():
    local = sorted(
        {
            (m, t)
            for m, targets in graph().items()
            for t, at_top in targets
            if not at_top and (m, t) not in LAZY
        }
    )
    assert not local, "function-local imports of wsal modules (move them to the top): " + str(local)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from wsal.app import route\n", ["wsal.app.route"]),
        ("def f():\n    from wsal.tube_ops import box_iou\n", ["wsal.tube_ops"]),
        ("from . import structures\n", ["wsal.structures"]),
    ],
)
def test_the_reader_sees_every_kind_of_import(tmp_path, source, expected):
    """The checks above are only as good as the import reader: it resolves absolute, relative
    and function-local imports to the modules they name."""
    known = {"wsal", "wsal.app", "wsal.app.route", "wsal.tube_ops", "wsal.structures"}
    path = tmp_path / "x.py"
    path.write_text(source)
    assert [t for t, _ in imports(path, "wsal.x", known)] == expected


def test_a_back_import_is_caught():
    assert layer("wsal.linking.actor") < layer("wsal.models.tracker")
    assert layer("wsal.data.datamodule") < layer("wsal.app.route")
