"""Embedding similarity between a model's answers and the reference answers: the cosine of their sentence
embeddings. The embedder itself (the bundled all-MiniLM-L6-v2, or a named model) is loaded by medtune/embedder.py,
which the safety classifier shares.
"""

from __future__ import annotations


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
