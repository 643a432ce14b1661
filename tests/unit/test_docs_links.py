"""The documentation's relative links resolve: every `[text](target)` and `![alt](target)` in the README, docs/,
bench/README.md, tests/data/SOURCES.md and the assets' README points to a file or folder of the repository, and a
`#anchor` (in another Markdown file or in the same one) names one of its target's headings as GitHub slugs them.
The README stays a front door: fewer than 300 lines.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCANNED = [
    "README.md",
    *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")),
    "bench/README.md",
    "tests/data/SOURCES.md",
    "src/medtune/assets/README.md",
]

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if match:
            marker = match.group(1)
            if fence is None:
                fence = marker[0] * len(marker)
            elif marker[0] == fence[0] and len(marker) >= len(fence) and not line.strip()[len(marker):].strip():
                fence = None
            continue
        if fence is None:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text lowercased, punctuation but `-` and `_` dropped, spaces to
    `-` (one `-` per space, none collapsed)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link or image in a heading counts by its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2 ... suffixes for repeated headings."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    found |= {m.group(1) for m in re.finditer(r"<a\s+(?:name|id)=\"([^\"]+)\"", path.read_text(encoding="utf-8"))}
    return found


def links(path: Path):
    """(line number, target) of every relative link and image outside code."""
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        line = INLINE_CODE.sub(lambda m: "`" + "x" * len(m.group(2)) + "`", line)
        targets = [m.group(2) for m in LINK.finditer(line)]
        reference = REFERENCE.match(line)
        if reference:
            targets.append(reference.group(1))
        for target in targets:
            target = target.strip("<>")
            if EXTERNAL.match(target):
                continue
            yield number, target


def problems(name: str) -> list[str]:
    source = ROOT / name
    found = []
    for number, target in links(source):
        where = f"{name}:{number}: link ({target})"
        path_part, _, anchor = target.partition("#")
        if path_part:
            path_part = unquote(path_part)
            base = ROOT if path_part.startswith("/") else source.parent
            resolved = (base / path_part.lstrip("/")).resolve()
            if not resolved.exists():
                found.append(f"{where}: {resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else resolved}"
                             " does not exist")
                continue
        else:
            resolved = source
        if anchor and resolved.is_file() and resolved.suffix.lower() == ".md":
            if unquote(anchor).lower() not in anchors(resolved):
                found.append(f"{where}: {resolved.relative_to(ROOT)} has no heading whose anchor is #{anchor}")
    return found


@pytest.mark.parametrize("name", SCANNED)
def test_relative_links_resolve(name):
    if not (ROOT / name).exists():
        pytest.skip(f"{name} does not exist (yet)")
    found = problems(name)
    assert not found, "broken links:\n" + "\n".join(found)


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines < 300, f"README.md has {lines} lines: move detail into docs/ (it must stay under 300)"


@pytest.mark.parametrize(("heading", "anchor"), [
    ("`medtune prepare`", "medtune-prepare"),
    ("`medtune generate`, `chat`, `serve`", "medtune-generate-chat-serve"),
    ("Scale: several GPUs, several machines", "scale-several-gpus-several-machines"),
    ("export --to gguf (llama.cpp, Ollama, LM Studio)", "export---to-gguf-llamacpp-ollama-lm-studio"),
    ("On a real model, on a GPU", "on-a-real-model-on-a-gpu"),
    ("snake_case and [a link](x.md)", "snake_case-and-a-link"),
])
def test_slug_follows_github(heading, anchor):
    assert slug(heading) == anchor
