"""Sampling parameters, their checks, and the transformers GenerationConfig they become."""

from __future__ import annotations

from dataclasses import dataclass, field

from medtune.errors import MedtuneError

DEFAULT_MAX_TOKENS = 4096  # long enough for a full chain of thought
# a seed is a 64-bit signed integer, as OpenAI's and vLLM's servers take it: torch.manual_seed takes
# [-2**63, 2**64) and vLLM keeps seeds in an int64 array, so a larger one failed mid-generation
SEED_MIN, SEED_MAX = -2**63, 2**63 - 1
# below this a temperature samples greedily, as in vLLM: logits divided by 1e-320 overflow to inf, and sampling
# from them fails
GREEDY_BELOW = 1e-5


@dataclass
class SamplingParams:
    max_tokens: int = DEFAULT_MAX_TOKENS  # new tokens at most (also capped by the context window)
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0  # nucleus sampling; 1 = off
    top_k: int = 0  # 0 = off
    repetition_penalty: float = 1.0  # 1 = off
    seed: int | None = None  # reseed torch before this generation (None: continue the process's stream)
    stop: list[str] = field(default_factory=list)  # extra stop strings (or single tokens) for this request
    ignore_eos: bool = False  # keep going past end-of-sequence tokens (benchmarks)

    def __post_init__(self):
        self.stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def check(self) -> SamplingParams:
        """Raise MedtuneError naming the first bad value."""
        problems = [
            (self.max_tokens < 1, f"max_tokens must be at least 1, got {self.max_tokens}"),
            (self.temperature < 0, f"temperature must be >= 0, got {self.temperature}"),
            (not 0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}"),
            (self.top_k < 0, f"top_k must be >= 0, got {self.top_k}"),
            (self.repetition_penalty <= 0, f"repetition_penalty must be > 0, got {self.repetition_penalty}"),
            (self.seed is not None and not SEED_MIN <= self.seed <= SEED_MAX,
             f"seed must be a 64-bit integer (from -2**63 to 2**63 - 1), got {self.seed}"),
        ]
        for bad, message in problems:
            if bad:
                raise MedtuneError(message)
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW

    @property
    def batch_key(self) -> tuple:
        """What the rows of one batch must share; max_tokens and stop strings are per row. A seeded sample runs
        alone: its random draws then depend on its seed only, not on which rows shared its batch."""
        if self.greedy:
            return (False, self.repetition_penalty, self.ignore_eos)
        alone = id(self) if self.seed is not None else None
        return (True, self.temperature, self.top_p, self.top_k, self.repetition_penalty, alone, self.ignore_eos)

    def generation_config(self, max_new_tokens: int, eos_ids: list[int], pad_id: int | None):
        """Every knob set explicitly, so the model's own sampling defaults (e.g. top_k=50) do not leak in."""
        from transformers import GenerationConfig

        sampling = {} if self.greedy else dict(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        return GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=not self.greedy, repetition_penalty=self.repetition_penalty,
            eos_token_id=[] if self.ignore_eos else eos_ids, pad_token_id=pad_id, **sampling,
        )
