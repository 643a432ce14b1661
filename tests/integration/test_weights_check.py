"""A truncated or corrupt weights file given to any verb that loads weights (generate, serve, eval, merge, export):
one line naming the file and what is wrong with it, exit 2, found before transformers or PEFT opens it. The same for
an adapter folder that lacks its weights file, and a merged folder whose merge never finished its check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from inference_helpers import make_run

from fixture_data import EVAL_DIR
from medtune.cli import main
from medtune.config import Config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def verbs(weights: list[str], tmp_path: Path) -> dict[str, list[str]]:
    """Each verb's command line on `weights` (--run DIR, or --model M [--adapter A])."""
    return {
        "generate": ["generate", *weights, "--max-tokens", "2", "hello"],
        "serve": ["serve", *weights, "--port", "0"],
        "eval": ["eval", *weights, "--task", "medqa", "--data-dir", str(EVAL_DIR), "--limit", "1",
                 "--out", str(tmp_path / "eval")],
        "merge": ["merge", *weights, "--out", str(tmp_path / "merged")],
        "export-mlx": ["export", *weights, "--to", "mlx", "--out", str(tmp_path / "mlx")],
        "export-gguf": ["export", *weights, "--to", "gguf", "--out", str(tmp_path / "gguf")],
    }


VERBS = ["generate", "serve", "eval", "merge", "export-mlx", "export-gguf"]


def cut(path: Path, keep: int) -> tuple[int, int]:
    """Cut the file to `keep` bytes, as a copy or download that stopped; (size it had, size it has)."""
    whole = path.stat().st_size
    path.write_bytes(path.read_bytes()[:keep])
    return whole, keep


def one_line_exit_2(argv: list[str], capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_llama):
    return make_run(tiny_llama, tmp_path_factory.mktemp("weights") / "run")


@pytest.mark.parametrize("verb", VERBS)
def test_a_truncated_adapter_is_one_line_naming_the_file(verb, run, tmp_path, capsys):
    bad = tmp_path / "run"
    shutil.copytree(run, bad)
    weights = bad / "adapter" / "adapter_model.safetensors"
    whole, now = cut(weights, 5000)
    line = one_line_exit_2(verbs(["--run", str(bad)], tmp_path)[verb], capsys)
    assert line.endswith(f"{weights}: not a readable safetensors file (truncated: header says {whole} bytes, "
                         f"file has {now})"), line
    assert not (tmp_path / "merged").exists() and not (tmp_path / "mlx").exists()


@pytest.mark.parametrize("verb", VERBS)
def test_a_truncated_model_is_one_line_naming_the_file(verb, run, tiny_llama, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_llama, model)
    weights = model / "model.safetensors"
    whole, now = cut(weights, weights.stat().st_size // 2)
    given = ["--model", str(model)] + (["--adapter", str(run / "adapter")] if verb in ("merge", "export-mlx") else [])
    line = one_line_exit_2(verbs(given, tmp_path)[verb], capsys)
    assert line.endswith(f"{weights}: not a readable safetensors file (truncated: header says {whole} bytes, "
                         f"file has {now})"), line


def test_a_corrupt_header_is_named_too(run, tmp_path, capsys):
    bad = tmp_path / "run"
    shutil.copytree(run, bad)
    weights = bad / "adapter" / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:16] = b"\x01\x02garbl"  # the JSON header's first bytes overwritten
    weights.write_bytes(bytes(data))
    line = one_line_exit_2(["generate", "--run", str(bad), "--max-tokens", "2", "hello"], capsys)
    assert f"{weights}: not a readable safetensors file (" in line


def test_an_adapter_folder_without_its_weights_is_one_line(run, tmp_path, capsys):
    half = tmp_path / "half"  # what a killed `export --from mlx` left: adapter_config.json alone
    half.mkdir()
    shutil.copy(run / "adapter" / "adapter_config.json", half)
    line = one_line_exit_2(["generate", "--adapter", str(half), "--max-tokens", "2", "hello"], capsys)
    assert line.endswith(f"{half}: adapter_config.json but no adapter_model.safetensors: an adapter written only "
                         "in part; write it again"), line
    bad = tmp_path / "run"
    shutil.copytree(run, bad)
    (bad / "adapter" / "adapter_model.safetensors").unlink()
    line = one_line_exit_2(["merge", "--run", str(bad), "--out", str(tmp_path / "m")], capsys)
    assert "adapter_config.json but no adapter_model.safetensors" in line


def test_a_merged_folder_without_its_check_file_is_refused(tiny_llama, tmp_path, capsys):
    """A folder medtune merge writes (config.json and the run's config.yaml) but without medtune_merge.json: its
    merge stopped before the reload check passed (an older medtune renamed the folder into place first)."""
    folder = tmp_path / "merged"
    shutil.copytree(tiny_llama, folder)
    Config().save(folder / "config.yaml")
    line = one_line_exit_2(["generate", "--model", str(folder), "--max-tokens", "2", "hello"], capsys)
    assert line.endswith(f"{folder}: a medtune merge folder without medtune_merge.json, so its merge never "
                         "finished its check: merge again into a new --out"), line


def test_an_mlx_adapter_cut_short_is_named(run, tiny_llama, tmp_path, capsys):
    mlx = tmp_path / "mlx"
    assert main(["export", "--run", str(run), "--to", "mlx", "--out", str(mlx)]) == 0
    weights = mlx / "adapters.safetensors"
    whole, now = cut(weights, 1000)
    line = one_line_exit_2(["export", "--from", "mlx", str(mlx), "--model", str(tiny_llama),
                            "--out", str(tmp_path / "back")], capsys)
    assert line.endswith(f"{weights}: not a readable safetensors file (truncated: header says {whole} bytes, "
                         f"file has {now})"), line
