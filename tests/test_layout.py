"""The import graph points one way (docs/architecture.md): the base (errors, files) below
the stages, ``corpus`` below ``index``, inside ``index`` the embedding below the store below
retrieval below the build, and the app (``qabot``'s CLI, settings and eval, and ``bot``) on
top. A module that imports upward, even lazily inside a function, fails here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: Layers from the bottom; a module may import its own layer and those below it.
LAYERS = [
    ("base", ["qabot.errors", "qabot.files"]),
    ("corpus", ["corpus"]),
    ("embedding", ["index.embedding"]),
    ("store", ["index.store"]),
    ("retrieval", ["index.retrieval"]),
    ("build", ["index.build", "index.calibration", "index"]),
    ("app", ["qabot", "bot"]),
]


def layer_of(module: str) -> int | None:
    """The layer of a project module (the longest matching prefix), None if not ours."""
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    return best[0] if best else None


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in ("qabot", "corpus", "index", "bot"):
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imports_of(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions (relative ones resolved)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def upward_imports() -> list[str]:
    modules = project_modules()
    wrong = []
    for module, path in sorted(modules.items()):
        own = layer_of(module)
        for target in sorted(imports_of(path, module)):
            if target not in modules:  # an attribute, or not ours
                continue
            theirs = layer_of(target)
            if theirs is not None and own is not None and theirs > own:
                wrong.append(f"{module} ({LAYERS[own][0]}) imports {target} ({LAYERS[theirs][0]})")
    return wrong


def test_every_project_module_has_a_layer():
    assert [m for m in project_modules() if layer_of(m) is None] == []


def test_no_module_imports_a_layer_above_its_own():
    assert upward_imports() == []


def test_the_bot_and_the_cli_do_not_import_each_other_both_ways():
    """Both are the app; the CLI starts the bot, so the bot never imports the CLI."""
    modules = project_modules()
    bot_imports = set().union(*(imports_of(p, m) for m, p in modules.items() if m.startswith("bot")))
    assert not {m for m in bot_imports if m.startswith("qabot.cli")}


@pytest.mark.parametrize("module", ["qabot.errors", "qabot.files"])
def test_the_base_imports_nothing_of_the_project(module):
    path = project_modules()[module]
    assert [m for m in imports_of(path, module) if layer_of(m) is not None] == []


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "bench").glob("*.py")))
def test_every_benchmark_script_starts(script):
    """Benchmarks are not run in CI (they take minutes to hours), but a rename in the code
    must not leave one unable to start: each imports what it uses and prints its usage."""
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--help"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-1500:]
