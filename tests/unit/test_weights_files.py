"""The check every weights file passes before transformers, PEFT or the mlx converter opens it
(`models.load.check_safetensors`, `check_model_folder`): one line naming the file and what is wrong with it (cut
short, too long, no safetensors header, a shard the index names but the folder lacks), found from the header and the
file's size alone."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from medtune.errors import MedtuneError, WeightsError
from medtune.models.load import check_model_folder, check_safetensors


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "adapter_model.safetensors"
    save_file({"a": np.zeros((4, 8), np.float32), "b": np.ones(16, np.float32)}, str(path))
    return path


def header_length(path) -> int:
    return int.from_bytes(path.read_bytes()[:8], "little")


def test_a_whole_file_passes(weights):
    check_safetensors(weights)


def test_a_cut_file_names_itself_and_both_sizes(weights):
    whole = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[:whole - 10])
    with pytest.raises(WeightsError) as error:
        check_safetensors(weights)
    assert str(error.value) == (f"{weights}: not a readable safetensors file (truncated: header says {whole} bytes, "
                                f"file has {whole - 10})")
    assert isinstance(error.value, MedtuneError)  # the CLI prints it on one line and exits 2


def test_a_file_cut_inside_its_header_and_an_empty_one(weights):
    weights.write_bytes(weights.read_bytes()[:20])
    with pytest.raises(WeightsError, match=r"truncated: its header alone is \d+ bytes, file has 20\)$"):
        check_safetensors(weights)
    weights.write_bytes(b"")
    with pytest.raises(WeightsError, match=r"adapter_model.safetensors: not a readable safetensors file \(empty\)$"):
        check_safetensors(weights)


def test_bytes_past_the_end_are_named_too(weights):
    whole = weights.stat().st_size
    weights.write_bytes(weights.read_bytes() + b"\0" * 7)
    with pytest.raises(WeightsError, match=rf"header says {whole} bytes, file has {whole + 7}\)$"):
        check_safetensors(weights)


def test_a_file_that_is_no_safetensors_at_all(weights):
    whole, length = weights.read_bytes(), header_length(weights)
    weights.write_bytes(b"<html>404 Not Found</html>" * 3)  # what a failed download leaves
    with pytest.raises(WeightsError) as error:
        check_safetensors(weights)
    assert str(error.value).startswith(f"{weights}: not a readable safetensors file (")
    assert "\n" not in str(error.value)
    weights.write_bytes(whole[:8] + b"{not json" + b" " * (length - 9) + whole[8 + length:])
    with pytest.raises(WeightsError, match=r"not a readable safetensors file \(its header is not"):
        check_safetensors(weights)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(WeightsError, match=r"model.safetensors: missing$"):
        check_safetensors(tmp_path / "model.safetensors")


def test_a_model_folder_checks_each_shard_its_index_names(tmp_path, weights):
    folder = tmp_path / "model"
    folder.mkdir()
    for shard in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        (folder / shard).write_bytes(weights.read_bytes())
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    check_model_folder(folder)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(WeightsError, match=r"model-00002-of-00002.safetensors: missing \(named by "
                                           r"model.safetensors.index.json\)$"):
        check_model_folder(folder)
    (folder / "model-00002-of-00002.safetensors").write_bytes(weights.read_bytes()[:100])
    with pytest.raises(WeightsError, match=r"model-00002-of-00002.safetensors: not a readable safetensors file "
                                           r"\(truncated"):
        check_model_folder(folder)
