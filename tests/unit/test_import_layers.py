"""The import direction between medtune's packages (docs/architecture.md, section 2), read with ast from the source
of src/medtune: every `import medtune...` / `from medtune... import ...` (and relative import), at top level or inside
a function. Nothing is imported, so the check is fast and needs no dependency.

Rules (each failure names the module, the import and the rule):
- safety/ never imports evaluation/ or compare/: evaluation measures the safety layer, not the other way round.
- evaluation/ never imports compare/: compare builds on evaluations.
- inference/ imports none of safety/ (the layer is an object handed to Engine.load), evaluation/, compare/.
- the neutral modules that safety/ and evaluation/ share (endpoint.py, backoff.py, embedder.py) import nothing from
  the packages above them.
- no library module imports commands/ (the verbs sit on top; cli.py and __main__.py start them).
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "medtune"

NEUTRAL = ("endpoint", "backoff", "embedder")
UPPER = ("safety", "evaluation", "compare", "inference", "training", "commands")

RULES = [
    # (name, does the rule apply to this module (dotted, under medtune), the medtune parts it may not import)
    ("safety/ never imports evaluation/ or compare/", lambda m: _top(m) == "safety", ("evaluation", "compare")),
    ("evaluation/ never imports compare/", lambda m: _top(m) == "evaluation", ("compare",)),
    ("inference/ imports none of safety/, evaluation/, compare/", lambda m: _top(m) == "inference",
     ("safety", "evaluation", "compare")),
    ("the neutral modules (endpoint.py, backoff.py, embedder.py) import no package above them",
     lambda m: m in NEUTRAL, UPPER),
    ("no library module imports commands/", lambda m: _top(m) not in ("commands", "cli", "__main__"), ("commands",)),
]


def _top(module: str) -> str:
    """'safety.guard' -> 'safety'; 'endpoint' -> 'endpoint'."""
    return module.split(".", 1)[0]


def _module_name(path: Path, root: Path = SRC) -> str:
    """src/medtune/safety/guard.py -> 'safety.guard'; safety/__init__.py -> 'safety'."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = SRC) -> list[tuple[int, str]]:
    """(line, imported module under medtune, dotted without 'medtune.') for every medtune import in the file.
    `from medtune import commands` counts as importing 'commands'; a relative import is resolved."""
    module = _module_name(path, root)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name.removeprefix("medtune.")) for a in node.names
                      if a.name.startswith("medtune.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y, from .. import z
                base = package[:len(package) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            elif node.module == "medtune" or (node.module or "").startswith("medtune."):
                source = node.module.removeprefix("medtune").lstrip(".")
            else:
                continue
            if source:
                found.append((node.lineno, source))
            else:  # from medtune import x, y: each name is a module or package of medtune (or __version__)
                found += [(node.lineno, a.name) for a in node.names]
    return found


def violations() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        for line, target in imports_of(path):
            for rule, applies, banned in RULES:
                if applies(module) and _top(target) in banned:
                    out.append(f"src/medtune/{path.relative_to(SRC).as_posix()}:{line} ({module}) imports "
                               f"medtune.{target}, against the rule: {rule}")
    return out


def test_packages_import_only_downwards():
    found = violations()
    assert not found, "import layers broken (docs/architecture.md, section 2):\n" + "\n".join(found)


@pytest.mark.parametrize("source, expected", [
    ("from medtune.evaluation.endpoint import ChatEndpoint", "evaluation.endpoint"),
    ("def f():\n    from medtune.evaluation import similarity", "evaluation"),
    ("import medtune.compare.study", "compare.study"),
    ("from medtune import commands", "commands"),
    ("from ..evaluation import stats", "evaluation"),
])
def test_the_reader_sees_every_form_of_import(tmp_path, source, expected):
    """The check reads top-level and function-level imports, absolute and relative ones."""
    root = tmp_path / "medtune"
    (root / "safety").mkdir(parents=True)
    (root / "safety" / "x.py").write_text(source + "\n")
    assert [t for _, t in imports_of(root / "safety" / "x.py", root)] == [expected]
