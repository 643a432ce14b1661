"""The optional third screen: a guard model behind an OpenAI-compatible endpoint (Llama Guard served by vLLM,
Ollama or `medtune serve --model <llama-guard>`). It gets the conversation and answers "safe" or "unsafe" with
Llama Guard's hazard codes on the next line; the codes map onto medtune's categories. A reply that is neither
counts as unsafe, and a model that does not answer that way at load (a chat model, not a guard) is an error:
reading "Sure, here is..." as "not unsafe" would wave every request through.
"""

from __future__ import annotations

import logging

from medtune.backoff import Backoff
from medtune.endpoint import ChatEndpoint, EndpointDown
from medtune.errors import MedtuneError

log = logging.getLogger(__name__)

# Llama Guard 3's hazard taxonomy. S6 "specialized advice" flags medical advice itself, which is this
# assistant's job, so it is not a reason to refuse here.
HAZARDS = {"S1": "illegal_acts", "S2": "illegal_acts", "S3": "illegal_acts", "S4": "illegal_acts",
           "S5": "misinformation", "S6": None, "S7": "unethical_practice", "S8": "illegal_acts",
           "S9": "illegal_acts", "S10": "unethical_practice", "S11": "self_harm", "S12": "illegal_acts",
           "S13": "misinformation", "S14": "illegal_acts"}


PROBE = "What is anemia?"  # asked once at load: a guard answers "safe"


def parse(reply: str) -> tuple[bool, str | None, str]:
    """(unsafe?, category, the reply's first line and codes) from a guard's reply text."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    first = lines[0].lower() if lines else ""
    if first.startswith("safe"):
        return False, None, lines[0]
    if not first.startswith("unsafe"):
        return True, None, f"guard reply not understood (neither 'safe' nor 'unsafe'): {first[:60]!r}"
    codes = [c.strip().upper() for c in (lines[1] if len(lines) > 1 else "").split(",") if c.strip()]
    categories = [HAZARDS.get(c, "illegal_acts") for c in codes] or ["illegal_acts"]
    if all(c is None for c in categories):
        return False, None, f"unsafe {','.join(codes)} (specialized advice: allowed for a medical assistant)"
    return True, next(c for c in categories if c), f"unsafe {','.join(codes)}".strip()


class Guard:
    def __init__(self, url: str, model: str | None = None, api_key_env: str | None = "OPENAI_API_KEY",
                 backoff: Backoff | None = None):
        # the judge's client: an overloaded guard (429, 5xx) is waited for within the backoff's bound
        self.endpoint = ChatEndpoint(url, model, api_key_env, max_tokens=20, role="guard", backoff=backoff).check()
        reply = self.endpoint.reply([{"role": "user", "content": PROBE}])
        if not reply.strip().lower().startswith(("safe", "unsafe")):
            raise MedtuneError(f"safety.guard_url: {self.endpoint.model!r} at {url} answered a test question with "
                               f"{reply.strip()[:60]!r}, not 'safe' or 'unsafe': it is not a guard model; serve "
                               "one (Llama Guard) there, or unset safety.guard_url")

    def screen(self, messages: list[dict]) -> tuple[bool, str | None, str]:
        """The guard's decision on a conversation (its last turn is what is judged). An endpoint that fails
        mid-run (a refused request, a reply that is no chat completion, or EndpointDown: still failing when the
        client's backoff ran out) counts as unsafe: a screen that cannot answer must not wave requests through."""
        try:
            return parse(self.endpoint.reply(messages))
        except (OSError, EndpointDown) as error:
            log.warning("safety: the guard endpoint failed (%s): refusing", error)
            return True, None, f"guard endpoint failed: {error}"
