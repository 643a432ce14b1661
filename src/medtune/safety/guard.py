"""The optional third screen: a guard model behind an OpenAI-compatible endpoint (Llama Guard served by vLLM or
Ollama, or any chat model under `medtune serve`). It gets the conversation and answers "safe" or
"unsafe" with Llama Guard's hazard codes on the next line; the codes map onto medtune's categories.
"""

from __future__ import annotations

import logging

from medtune.evaluation.endpoint import ChatEndpoint

log = logging.getLogger(__name__)

# Llama Guard 3's hazard taxonomy. S6 "specialized advice" flags medical advice itself, which is this
# assistant's job, so it is not a reason to refuse here.
HAZARDS = {"S1": "illegal_acts", "S2": "illegal_acts", "S3": "illegal_acts", "S4": "illegal_acts",
           "S5": "misinformation", "S6": None, "S7": "unethical_practice", "S8": "illegal_acts",
           "S9": "illegal_acts", "S10": "unethical_practice", "S11": "self_harm", "S12": "illegal_acts",
           "S13": "misinformation", "S14": "illegal_acts"}


def parse(reply: str) -> tuple[bool, str | None, str]:
    """(unsafe?, category, the reply's first line and codes) from a guard's reply text."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    if not lines or not lines[0].lower().startswith("unsafe"):
        return False, None, (lines[0] if lines else "")
    codes = [c.strip().upper() for c in (lines[1] if len(lines) > 1 else "").split(",") if c.strip()]
    categories = [HAZARDS.get(c, "illegal_acts") for c in codes] or ["illegal_acts"]
    if all(c is None for c in categories):
        return False, None, f"unsafe {','.join(codes)} (specialized advice: allowed for a medical assistant)"
    return True, next(c for c in categories if c), f"unsafe {','.join(codes)}".strip()


class Guard:
    def __init__(self, url: str, model: str | None = None, api_key_env: str | None = "OPENAI_API_KEY"):
        self.endpoint = ChatEndpoint(url, model, api_key_env, max_tokens=20, role="guard").check()

    def screen(self, messages: list[dict]) -> tuple[bool, str | None, str]:
        """The guard's decision on a conversation (its last turn is what is judged). An endpoint that fails
        mid-run counts as unsafe: a screen that cannot answer must not wave requests through."""
        try:
            return parse(self.endpoint.reply(messages))
        except OSError as error:
            log.warning("safety: the guard endpoint failed (%s): refusing", error)
            return True, None, f"guard endpoint failed: {error}"
