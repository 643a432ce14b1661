"""The one question medtune asks the Hugging Face Hub before a slow library call: can this id be reached?

transformers, datasets and sentence-transformers retry an unreachable hub for half a minute to two minutes before
they give up, so one quick request (5 s) decides first whether to read the hub, read the local cache only, or stop
with a line that says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from medtune.errors import first_line

OFFLINE, REACHABLE, MISSING, UNREACHABLE = "offline", "reachable", "missing", "unreachable"
TIMEOUT_S = 5


@dataclass(frozen=True)
class Probe:
    state: str  # offline (HF_HUB_OFFLINE: never ask), reachable, missing (the hub says no such repo), unreachable
    reason: str = ""  # for unreachable: what failed (DNS, refused, timeout, proxy)


def probe(repo_id: str, repo_type: str = "model") -> Probe:
    """Ask the hub about `repo_id` (a model or a dataset) once."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    if constants.HF_HUB_OFFLINE:  # the user's own switch: libraries then read their caches only
        return Probe(OFFLINE)
    info = HfApi().dataset_info if repo_type == "dataset" else HfApi().model_info
    try:
        info(repo_id, timeout=TIMEOUT_S)
    except GatedRepoError:
        return Probe(REACHABLE)  # the library will ask for the token it needs
    except RepositoryNotFoundError:
        return Probe(MISSING)
    except HfHubHTTPError:
        return Probe(REACHABLE)  # the hub answered; the library reports what it said
    except Exception as e:  # noqa: BLE001 - connection refused, DNS failure, timeout, proxy error
        return Probe(UNREACHABLE, first_line(e))
    return Probe(REACHABLE)


def cached(repo_ids: list[str], filename: str, repo_type: str = "model") -> bool:
    """True when one of `repo_ids` has `filename` in the local hub cache."""
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(i, filename, repo_type=repo_type), str) for i in repo_ids)
