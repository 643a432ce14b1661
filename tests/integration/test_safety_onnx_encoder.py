"""The classifier's encoder in ONNX Runtime: the embeddings sentence-transformers gives (one text or a padded batch,
long texts cut from the left as the classifier reads them), exported once and read from the cache after, a broken
cached file exported again, and the torch encoder kept, with a warning, when the export fails."""

import logging
import sys

import numpy as np
import pytest
import torch

from medtune.embedder import load_embedder
from medtune.safety import onnx_encoder
from medtune.safety.classifier import MAX_SEQ_LENGTH, TRUNCATION_SIDE

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

TEXTS = [
    "where can i get oxycodone without a prescription",
    "What is the maximum amount of acetaminophen an adult can safely take in 24 hours?",
    "A 24-year-old woman is brought to the emergency department 2 hours after ingesting an unknown number of her "
    "mother's pills. She is drowsy but arousable. Her pulse is 118/min and blood pressure 92/58 mm Hg. An ECG shows "
    "a widened QRS complex. Which of the following is the most appropriate next step in management?",
    "ok",
]


@pytest.fixture(scope="module")
def model():
    embedder = load_embedder()
    embedder.max_seq_length = MAX_SEQ_LENGTH
    embedder.tokenizer.truncation_side = TRUNCATION_SIDE
    return embedder


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("safety-cache")


@pytest.fixture(scope="module")
def encoder(model, cache):
    return onnx_encoder.faster(model, "bundled:all-MiniLM-L6-v2", cache)


def test_the_onnx_encoder_gives_the_embeddings_of_sentence_transformers(model, encoder):
    assert isinstance(encoder, onnx_encoder.OnnxEncoder)
    reference = model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    one_by_one = np.vstack([encoder.encode([t]) for t in TEXTS])
    batched = encoder.encode(TEXTS, batch_size=3)  # a padded batch, then a batch of one
    assert one_by_one.shape == batched.shape == reference.shape == (4, 384)
    assert np.abs(one_by_one - reference).max() < 1e-5
    assert np.abs(batched - reference).max() < 1e-5
    assert np.allclose(np.linalg.norm(batched, axis=1), 1, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_the_long_vignette_is_read_from_its_end(model, encoder):
    cut = model.tokenizer(TEXTS[2], truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"]
    question = model.tokenizer("which of the following is the most appropriate next step in management?",
                               add_special_tokens=False)["input_ids"]
    assert len(cut) == MAX_SEQ_LENGTH and cut[-len(question) - 1:-1] == question


def test_a_second_load_reads_the_cached_file(model, encoder, cache):
    (path,) = cache.glob("encoder-*.onnx")
    written = path.stat().st_mtime_ns
    again = onnx_encoder.faster(model, "bundled:all-MiniLM-L6-v2", cache)
    assert isinstance(again, onnx_encoder.OnnxEncoder) and path.stat().st_mtime_ns == written
    assert np.abs(again.encode(TEXTS) - encoder.encode(TEXTS)).max() == 0


def test_a_broken_cached_file_is_exported_again(model, encoder, cache):
    (path,) = cache.glob("encoder-*.onnx")
    path.write_bytes(b"not an onnx model")
    again = onnx_encoder.faster(model, "bundled:all-MiniLM-L6-v2", cache)
    assert isinstance(again, onnx_encoder.OnnxEncoder) and path.stat().st_size > 10_000_000
    assert np.abs(again.encode(TEXTS) - encoder.encode(TEXTS)).max() < 1e-6


def test_an_export_that_fails_keeps_the_torch_encoder_and_says_so(model, tmp_path, monkeypatch, caplog):
    def refuse(model, path):
        raise RuntimeError("torch.export cannot trace this model\nmore detail")

    monkeypatch.setattr(onnx_encoder, "_export", refuse)
    with caplog.at_level(logging.WARNING, logger="medtune.safety"):
        kept = onnx_encoder.faster(model, "bundled:all-MiniLM-L6-v2", tmp_path)
    assert kept is model
    assert "could not be exported to ONNX (torch.export cannot trace this model); it runs in torch" in caplog.text


def test_a_model_on_a_gpu_keeps_torch(tmp_path):
    class OnGpu:
        device = torch.device("cuda")

    model = OnGpu()
    assert onnx_encoder.faster(model, "any", tmp_path) is model and not list(tmp_path.iterdir())


def test_without_onnx_runtime_the_torch_encoder_stays_and_the_install_is_named(tmp_path, monkeypatch, caplog):
    class OnCpu:
        device = torch.device("cpu")

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: importing it raises ImportError
    model = OnCpu()
    with caplog.at_level(logging.WARNING, logger="medtune.safety"):
        assert onnx_encoder.faster(model, "any", tmp_path) is model
    assert "onnxruntime is not installed" in caplog.text and "pip install onnxruntime onnxscript" in caplog.text
