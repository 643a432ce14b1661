"""docs/architecture.md stays true of the code: every module path it names exists, and every module under
src/medtune has a row in one of its tables (a new module needs its line in the page). Plain pathlib + re."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "medtune"
DOC = ROOT / "docs" / "architecture.md"
# a backticked path starting with one of these is relative to the repository root; any other, to src/medtune
REPO_DIRS = ("src", "tests", "docs", "bench", "scripts", "configs")

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
MODULE = re.compile(r"`((?:[A-Za-z0-9_]+/)*[A-Za-z0-9_]+\.py)`")
FOLDER = re.compile(r"`((?:[A-Za-z0-9_]+/)+)`")
ROW = re.compile(r"^\|(?:[^|\n]*\|)*?\s*`((?:[A-Za-z0-9_]+/)*[A-Za-z0-9_]+\.py)`\s*\|", re.MULTILINE)  # a table cell


def _named(pattern: re.Pattern) -> set[str]:
    """Backticked paths the page names in its text (fenced blocks are diagrams, not references)."""
    return set(pattern.findall(FENCE.sub("", DOC.read_text(encoding="utf-8"))))


def _where(path: str) -> Path:
    return ROOT / path if path.split("/", 1)[0] in REPO_DIRS else SRC / path


def test_every_path_the_page_names_exists():
    missing = sorted(p for p in _named(MODULE) if not _where(p).is_file())
    missing += sorted(p for p in _named(FOLDER) if not _where(p).is_dir())
    assert not missing, (
        f"docs/architecture.md names paths that do not exist (module paths are relative to src/medtune/, or to the "
        f"repository root when they start with {', '.join(REPO_DIRS)}): {', '.join(missing)}; "
        "fix or remove their lines in docs/architecture.md"
    )


def test_every_module_has_a_line_in_the_page():
    modules = {p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py") if p.name != "__init__.py"}
    unnamed = sorted(modules - _named(ROW))
    assert not unnamed, (
        f"modules of src/medtune with no line in docs/architecture.md: {', '.join(unnamed)}; add a row for each to "
        "the module table of its package in docs/architecture.md: | `path/under/src/medtune.py` | its one job |"
    )
