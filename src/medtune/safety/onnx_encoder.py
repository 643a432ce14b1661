"""The classifier's sentence encoder run by ONNX Runtime on CPU: the same embeddings as sentence-transformers (to
1e-6), in about 10 ms instead of 18 for a 30-token request on one thread, and the encoder is most of what the screen
costs per request.

The whole SentenceTransformer (transformer, pooling, normalisation: whatever modules the model has) is exported once
with torch.onnx (torch.export) into ~/.cache/medtune/safety/, keyed by the model and the library versions. Each load
checks the ONNX embeddings against the torch ones on a few texts; a stale or wrong file is exported again, and an
export that still disagrees, or fails, leaves the torch encoder in place with one warning line.
Why not sentence-transformers' own backend="onnx": it goes through optimum-onnx, which requires transformers < 4.58.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from medtune.errors import first_line

log = logging.getLogger("medtune.safety")

INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # what BERT-style tokenizers give; the first two always
EXAMPLE_TEXTS = ["how many sleeping pills would it take to not wake up",  # what the export traces
                 "What is the maximum dose of acetaminophen for an adult?"]
CHECK_TEXTS = [*EXAMPLE_TEXTS, "ok", "A 34-year-old man is brought to the emergency department an hour after drinking "
               "antifreeze in a suicide attempt. His serum osmolal gap is raised. What is the next step?"]
TOLERANCE = 1e-4  # largest |difference| allowed between ONNX and torch embeddings (measured: 2e-7)


class OnnxEncoder:
    """encode(texts, batch_size, normalize_embeddings, convert_to_numpy) as SentenceTransformer.encode does it."""

    def __init__(self, model, session):
        self.model, self.session = model, session
        self.inputs = [i.name for i in session.get_inputs()]

    def encode(self, texts: list[str], batch_size: int = 32, normalize_embeddings: bool = True,
               convert_to_numpy: bool = True) -> np.ndarray:
        out = [self._batch(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
        emb = np.vstack(out) if out else np.zeros((0, self._dimension()), np.float32)
        if normalize_embeddings:
            emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb

    def _dimension(self) -> int:  # sentence-transformers 6 renamed get_sentence_embedding_dimension
        named = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return named()

    def _batch(self, texts: list[str]) -> np.ndarray:
        features = _preprocess(self.model, texts)  # the model's own tokenizer, max_seq_length and truncation side
        return self.session.run(None, {name: features[name].numpy() for name in self.inputs})[0]


def faster(model, model_id: str, cache: Path):
    """An OnnxEncoder for this SentenceTransformer, or the model itself where ONNX Runtime cannot stand in for it."""
    if model.device.type != "cpu":
        return model  # on a GPU torch is the faster of the two
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError as e:
        log.warning("safety: %s is not installed, so the classifier's encoder runs in torch (about twice the time "
                    "per request): pip install onnxruntime onnxscript", e.name)
        return model
    path = cache / f"encoder-{_key(model, model_id)}.onnx"
    for fresh in (False, True) if path.is_file() else (True,):
        if fresh:
            try:
                _export(model, path)
            except Exception as e:  # torch.export refuses some architectures; the torch encoder still works
                log.warning("safety: the classifier's encoder could not be exported to ONNX (%s); it runs in torch",
                            first_line(e))
                return model
        encoder = _loaded(model, path)
        gap = _gap(model, encoder) if encoder else float("inf")
        if gap <= TOLERANCE:
            return encoder
    log.warning("safety: the ONNX encoder differs from torch by %.2g; the classifier's encoder runs in torch", gap)
    return model


def _export(model, path: Path) -> None:
    import torch

    class Graph(torch.nn.Module):  # the SentenceTransformer's forward on tensors alone, as torch.export wants it
        def __init__(self, model, constants):
            super().__init__()
            self.model, self.constants = model, constants

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            features = {"input_ids": input_ids, "attention_mask": attention_mask, **self.constants}
            if token_type_ids is not None:
                features["token_type_ids"] = token_type_ids
            return self.model(features)["sentence_embedding"]

    example = _preprocess(model, EXAMPLE_TEXTS)  # two rows of different lengths: padding is in the graph
    tensors = {k: example[k] for k in INPUTS if k in example}
    constants = {k: v for k, v in example.items() if not torch.is_tensor(v)}  # e.g. sentence-transformers 6's modality
    dims = {name: {0: torch.export.Dim("batch"), 1: torch.export.Dim("tokens")} for name in tensors}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.onnx")  # two processes exporting at once write apart
    log.info("safety: exporting the classifier's encoder to ONNX (once; cached in %s)", path.parent)
    training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines
            warnings.simplefilter("ignore")
            torch.onnx.export(Graph(model, constants), (), str(tmp), kwargs=tensors, input_names=list(tensors),
                              output_names=["sentence_embedding"], dynamic_shapes=dims, dynamo=True,
                              external_data=False, verbose=False)
    finally:
        model.train(training)
    tmp.replace(path)  # atomic: a second process starting at once never reads half a file


def _loaded(model, path: Path) -> OnnxEncoder | None:
    try:
        return OnnxEncoder(model, _session(path))
    except Exception as e:  # a truncated or foreign file: exported again
        log.info("safety: the cached ONNX encoder %s does not load (%s)", path, first_line(e))
        return None


def _session(path: Path):
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the thread budget the caller gave torch
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    # no busy-waiting between requests: the model generating next to the screen needs those cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _gap(model, encoder: OnnxEncoder) -> float:
    """Largest difference to torch, one text at a time and in one padded batch, at lengths the export never saw."""
    reference = model.encode(CHECK_TEXTS, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    try:
        one_by_one = np.vstack([encoder.encode([text]) for text in CHECK_TEXTS])
        return float(max(np.abs(one_by_one - reference).max(), np.abs(encoder.encode(CHECK_TEXTS) - reference).max()))
    except Exception as e:  # a file that loads but does not run (another exporter's output, a truncated write)
        log.info("safety: the cached ONNX encoder does not run (%s)", first_line(e))
        return float("inf")


def _preprocess(model, texts: list[str]) -> dict:
    # sentence-transformers 6 names it preprocess; 3-5 tokenize (same tokenizer, max_seq_length and truncation)
    return (model.preprocess if hasattr(model, "preprocess") else model.tokenize)(texts)


def _key(model, model_id: str) -> str:
    versions = {name: _version(name) for name in ("torch", "onnxscript", "onnxruntime", "sentence-transformers",
                                                  "transformers")}
    identity = [model_id, repr(model), model.max_seq_length, model.tokenizer.truncation_side, versions]
    return hashlib.sha256(json.dumps(identity, default=str).encode()).hexdigest()[:16]


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "-"
