"""The floor plan holds: read from the source alone (no module is imported), the product packages
have no import cycle, their arrows run one way (locales < storage < conversations < bot), the
presentation room stays below the chat, and no name is kept only for old imports.

Every import counts, wherever it is written: one inside a function or under ``TYPE_CHECKING``
hides a cycle from the interpreter, it does not remove it. Migrations are left out: they are a
history, not a room.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "conversations", "storage", "locales")
# The layers, lowest first: a module may import its own layer and those below it.
LAYER = {"locales": 0, "storage": 1, "conversations": 2, "bot": 3}
PRESENTATION = "conversations.presentation"
# Names such as _FORMER_HELPERS: a tuple that keeps private names importable from an old place.
SHIM_SUFFIX = "_HELPERS"


def product_modules(root: Path) -> dict[str, Path]:
    """Every module of the product packages, by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def parsed(modules: dict[str, Path]) -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text(encoding="utf-8"), str(path))
            for name, path in modules.items()}


def _statements(body: list) -> Iterator[ast.AST]:
    """Every statement, at any depth (functions, classes, if, try, with, match…): imports are
    statements, so expressions need not be walked."""
    for node in body:
        yield node
        for block in ("body", "orelse", "finalbody", "handlers", "cases"):
            inner = getattr(node, block, None)
            if isinstance(inner, list):
                yield from _statements(inner)


def imported_names(name: str, path: Path, tree: ast.Module) -> Iterator[str]:
    """The absolute dotted names a module imports, wherever the import is written;
    ``from a import b`` gives ``a.b``: the module ``a.b`` if there is one, else a name in ``a``
    (the graph resolves it to the longest known module)."""
    own_package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = own_package
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _known(dotted: str, modules: dict[str, Path]) -> str | None:
    """The product module a dotted name lives in (its longest known prefix), if any."""
    while dotted and dotted not in modules:
        dotted = dotted.rpartition(".")[0]
    return dotted or None


def import_graph(modules: dict[str, Path], imports: dict[str, set[str]]) -> dict[str, set[str]]:
    """Which product modules each product module imports."""
    graph = {}
    for name, dotted_names in imports.items():
        targets = {_known(dotted, modules) for dotted in dotted_names}
        graph[name] = {target for target in targets if target and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _package(module: str) -> str:
    return module.partition(".")[0]


def _in_presentation(module: str) -> bool:
    return module == PRESENTATION or module.startswith(PRESENTATION + ".")


def structure_problems(root: Path) -> list[str]:
    """Everything wrong with the structure of the checkout at ``root``, one line each."""
    modules = product_modules(root)
    trees = parsed(modules)
    imports = {name: set(imported_names(name, modules[name], trees[name])) for name in modules}
    graph = import_graph(modules, imports)
    problems = [f"import cycle between modules: {' <-> '.join(c)}" for c in cycles(graph)]

    packages: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for module, targets in graph.items():
        packages[_package(module)].update(_package(t) for t in targets)
    for package, targets in packages.items():
        targets.discard(package)
    problems += [f"import cycle between packages: {' <-> '.join(c)}" for c in cycles(packages)]

    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if LAYER[_package(target)] > LAYER[_package(module)]:
                problems.append(f"layering: {module} imports {target} "
                                f"({_package(module)} is below {_package(target)})")

    for module in sorted(filter(_in_presentation, modules)):
        if any(name == "telegram" or name.startswith("telegram.") for name in imports[module]):
            problems.append(f"presentation: {module} imports telegram")
        for target in sorted(graph[module]):
            if _package(target) == "conversations" and not _in_presentation(target):
                problems.append(f"presentation: {module} imports {target}")

    for module, tree in sorted(trees.items()):
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            for target in targets:
                if isinstance(target, ast.Name) and target.id.endswith(SHIM_SUFFIX):
                    problems.append(f"shim: {module}.{target.id} keeps names for old imports")
    return problems


def test_product_code_has_no_cycle_no_layering_break_and_no_shim():
    problems = structure_problems(ROOT)
    assert not problems, "the floor plan is broken:\n" + "\n".join(problems)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_checker_reports_a_hidden_cycle_a_layering_break_and_a_shim(tmp_path):
    _write(tmp_path, {
        "locales/__init__.py": "",
        "storage/__init__.py": "",
        "storage/views.py": "from storage.rules import check\n",
        # Inside a function: the cycle is hidden from the interpreter, not gone.
        "storage/rules.py": "def check():\n    from storage import views\n",
        "storage/services.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from bot.wiring import Application\n"
            "_FORMER_HELPERS = ()\n"
        ),
        "conversations/__init__.py": "",
        "conversations/flow.py": "from conversations.presentation import words\n",
        "conversations/presentation/__init__.py": "",
        "conversations/presentation/words.py": (
            "from telegram import Message\nfrom ..flow import step\n"
        ),
        "bot/__init__.py": "",
        "bot/wiring.py": "import storage.services\n",
        "storage/db/migrations/env.py": "import bot.wiring\n",
    })
    problems = structure_problems(tmp_path)
    assert problems == [
        "import cycle between modules: bot.wiring <-> storage.services",
        "import cycle between modules: conversations.flow <-> conversations.presentation.words",
        "import cycle between modules: storage.rules <-> storage.views",
        "import cycle between packages: bot <-> storage",
        "layering: storage.services imports bot.wiring (storage is below bot)",
        "presentation: conversations.presentation.words imports telegram",
        "presentation: conversations.presentation.words imports conversations.flow",
        "shim: storage.services._FORMER_HELPERS keeps names for old imports",
    ]
