"""The second screen: a small classifier over sentence embeddings, trained on labelled exemplars, offline.

Features are sentence embeddings (what a request is about: the bundled all-MiniLM-L6-v2, and the multilingual
encoder of multilingual_encoder.py, which puts a request in Spanish or German near its English twin) and hashed
word 1-2-grams (how it is asked: "to die", "without a prescription", "maximum dose"). The head is a multinomial
logistic regression over "safe" and the unsafe categories, trained with torch on the bundled exemplars plus
safety.exemplars; it is cached under ~/.cache/medtune/safety, keyed by the exemplars, the encoders and this
module's settings, so only the first load pays for the training (seconds). Why not sentence-transformers' own
heads (SetFit): they fine-tune the encoder, which takes minutes on a CPU and gives no single small artefact to
cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medtune.errors import ConfigError
from medtune.safety.verdict import CATEGORIES

log = logging.getLogger(__name__)

BUNDLED = Path(__file__).resolve().parents[1] / "assets" / "safety_exemplars.jsonl"
CACHE = Path.home() / ".cache" / "medtune" / "safety"
HASH_DIM = 4096  # hashed n-gram features
NGRAM_WEIGHT = 1.0  # the n-gram block's weight next to the (unit-norm) embedding
SCALE = 10.0  # both blocks are unit vectors: scaled up so the logistic regression can be confident
MAX_SEQ_LENGTH = 48  # tokens the encoder reads, from the end: a request's intent closes its back-story
TRUNCATION_SIDE = "left"  # (as accurate as 128 tokens on the safety files, and a vignette costs 20 ms, not 35)
SETTINGS = {"version": 3, "dim": HASH_DIM, "ngram": NGRAM_WEIGHT, "scale": SCALE, "steps": 300, "l2": 1e-3,
            "max_seq_length": MAX_SEQ_LENGTH, "truncation_side": TRUNCATION_SIDE}


@dataclass(frozen=True)
class Exemplar:
    prompt: str
    category: str  # "safe" or one of CATEGORIES


def read_exemplars(path: Path, source: str) -> list[Exemplar]:
    """Rows {prompt, label: safe|unsafe, category}; errors name the file and line."""
    out = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{where}: not valid JSON ({e.msg}) ({source})") from None
            out.append(_exemplar(row, where, source))
    return out


def _exemplar(row: dict, where: str, source: str) -> Exemplar:
    prompt, label = row.get("prompt"), row.get("label")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError(f"{where}: missing or empty field 'prompt' ({source})")
    if label not in ("safe", "unsafe"):
        raise ConfigError(f"{where}: field 'label' is {label!r}, expected 'safe' or 'unsafe' ({source})")
    if label == "safe":
        return Exemplar(prompt, "safe")
    category = row.get("category") or "illegal_acts"
    if category not in CATEGORIES:
        raise ConfigError(f"{where}: field 'category' is {category!r}; unsafe rows use one of "
                          f"{', '.join(CATEGORIES)} ({source})")
    return Exemplar(prompt, category)


def ngrams(texts: list[str]) -> np.ndarray:
    """Hashed word unigrams and bigrams, each row scaled to unit length."""
    out = np.zeros((len(texts), HASH_DIM), dtype=np.float32)
    for i, text in enumerate(texts):
        words = re.findall(r"[\w']+", text.lower())  # any script's letters: "está", "tötet"
        for gram in words + [f"{a} {b}" for a, b in zip(words, words[1:])]:
            out[i, zlib.crc32(gram.encode()) % HASH_DIM] += 1.0
        norm = np.linalg.norm(out[i])
        if norm:
            out[i] /= norm
    return out


class Classifier:
    """predict(texts) -> [(unsafe probability, most likely unsafe category)]."""

    def __init__(self, encoders: list, weights: np.ndarray, bias: np.ndarray, classes: list[str]):
        self.encoders, self.weights, self.bias, self.classes = encoders, weights, bias, classes

    @classmethod
    def load(cls, exemplars: list[Exemplar], encoders: list, model_id: str) -> Classifier:
        """The head for these exemplars and encoders (each has encode(texts) -> unit vectors; model_id names them
        all), from the cache or trained now."""
        classes = ["safe", *sorted({e.category for e in exemplars} - {"safe"})]
        key = _cache_key(exemplars, model_id)
        cached = CACHE / f"head-{key}.npz"
        if cached.is_file():
            saved = np.load(cached, allow_pickle=False)
            return cls(encoders, saved["weights"], saved["bias"], [str(c) for c in saved["classes"]])
        log.info("safety: training the classifier on %d exemplars (once; cached in %s)", len(exemplars), CACHE)
        head = cls(encoders, np.zeros(0), np.zeros(0), classes)
        features = head.features([e.prompt for e in exemplars])
        labels = np.array([classes.index(e.category) for e in exemplars])
        head.weights, head.bias = _fit(features, labels, len(classes))
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp.npz")  # two processes training at once write apart
        np.savez(tmp, weights=head.weights, bias=head.bias, classes=np.array(classes))
        tmp.replace(cached)  # atomic: two processes starting at once never read half a file
        return head

    def features(self, texts: list[str]) -> np.ndarray:
        blocks = [e.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
                  for e in self.encoders]
        return SCALE * np.hstack([*blocks, NGRAM_WEIGHT * ngrams(texts)])

    def predict(self, texts: list[str], full: list[bool] | None = None) -> list[tuple[float, str]]:
        """full: as ByLanguage.predict takes it; one head reads every text the same way."""
        logits = self.features(texts) @ self.weights + self.bias
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        out = []
        for row in probs:
            unsafe = 1.0 - float(row[0])
            category = self.classes[1 + int(np.argmax(row[1:]))] if len(self.classes) > 1 else "illegal_acts"
            out.append((unsafe, category))
        return out


class ByLanguage:
    """predict(texts) like Classifier's: an English text through the head that reads both encoders, a text in
    another language through the head that reads the multilingual encoder alone. The English encoder's features
    mean little outside English, and a head that leans on them carries little of what the English exemplars teach
    over to other languages (measured on the development sets: 73% of unsafe requests refused with the joint head,
    79% with the multilingual one, at 4% and 1% over-refusal)."""

    def __init__(self, english: Classifier, other: Classifier):
        self.english, self.other = english, other

    @property
    def classes(self) -> list[str]:
        return self.other.classes  # trained on every exemplar: every category
    def predict(self, texts: list[str], full: list[bool] | None = None) -> list[tuple[float, str]]:
        """full[i] False: text i goes to the multilingual head whatever its language (a request's other readings
        and a conversation's joint text: the English encoder costs 5-14 ms a text on one thread, the multilingual
        one 2-4 ms)."""
        from medtune.safety.language import detect

        full = full or [True] * len(texts)
        routed = [wanted and detect(t) == "en" for t, wanted in zip(texts, full)]
        english = iter(self.english.predict([t for t, en in zip(texts, routed) if en]) if any(routed) else [])
        other = iter(self.other.predict([t for t, en in zip(texts, routed) if not en]) if not all(routed) else [])
        return [next(english) if en else next(other) for en in routed]


def _fit(features: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression; safe and unsafe weigh the same in total, however many of each there are."""
    import torch

    torch.manual_seed(0)
    x, y = torch.from_numpy(features), torch.from_numpy(labels)
    unsafe = (y > 0).float()
    weight = torch.where(y > 0, 0.5 / unsafe.mean(), 0.5 / (1 - unsafe.mean()))
    linear = torch.nn.Linear(x.shape[1], n_classes)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=SETTINGS["steps"], line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = (torch.nn.functional.cross_entropy(linear(x), y, reduction="none") * weight).mean()
        loss = loss + SETTINGS["l2"] * linear.weight.pow(2).sum() / 2
        loss.backward()
        return loss

    optimizer.step(closure)
    return linear.weight.detach().numpy().T.copy(), linear.bias.detach().numpy().copy()


def _cache_key(exemplars: list[Exemplar], model_id: str) -> str:
    digest = hashlib.sha256(json.dumps([SETTINGS, model_id]).encode())
    for e in exemplars:
        digest.update(f"{e.category}\t{e.prompt}\n".encode())
    return digest.hexdigest()[:16]
