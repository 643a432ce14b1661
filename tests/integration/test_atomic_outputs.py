"""Outputs are whole or absent: `merge`, `export --to mlx` and `export --from mlx` write into a hidden `.OUT.partial`
beside --out, check it there, and rename it to --out last. A process killed at any point (SIGKILL: no cleanup runs)
leaves no --out that a later command would trust, only the partial folder; the next write to that --out removes it
and says so in one line. Ctrl-C (KeyboardInterrupt: cleanup runs) leaves nothing at all.

The kill is deterministic: a child process runs `medtune` with one library function wrapped to SIGKILL the process
before (or right after) it runs; the production code has no switch for it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from inference_helpers import make_run

from medtune.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

KILLED_AT = """
import importlib, os, signal, sys

where, when, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
module_name, name = where.split(":")
module = importlib.import_module(module_name)
real = getattr(module, name)

def killed(*args, **kwargs):
    if when == "after":
        real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

setattr(module, name, killed)
from medtune.cli import main
sys.exit(main(argv))
"""


def killed_at(where: str, when: str, *argv) -> None:
    """Run `medtune ARGV` in a child process that SIGKILLs itself before/after the function `module:name` runs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-c", KILLED_AT, where, when, *map(str, argv)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == -9, f"not killed at {where} (exit {done.returncode}): {done.stderr[-3000:]}"


def medtune(argv: list, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def partial(out: Path) -> Path:
    return out.with_name(f".{out.name}.partial")


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_llama):
    return make_run(tiny_llama, tmp_path_factory.mktemp("atomic") / "run")


# ---------------------------------------------------------------- merge


def test_a_merge_killed_in_its_reload_check_leaves_no_out_folder(run, tmp_path, capsys):
    out = tmp_path / "merged"
    killed_at("medtune.export.merge:_check", "before", "merge", "--run", run, "--out", out)
    assert not out.exists()  # unverified weights never sit where generate, eval or push would load them
    assert partial(out).is_dir()
    code, stdout, err = medtune(["merge", "--run", run, "--out", out], capsys)
    assert code == 0, err
    assert f"removed {partial(out)}, left by an earlier merge that did not finish" in err
    assert len([line for line in err.splitlines() if "removed" in line]) == 1
    assert (out / "medtune_merge.json").is_file() and not partial(out).exists()
    assert "merged into" in stdout


def test_a_merge_killed_while_writing_leaves_only_its_partial_folder(run, tmp_path, capsys):
    out = tmp_path / "merged"
    killed_at("medtune.export.merge:_write", "after", "merge", "--run", run, "--out", out)
    assert not out.exists() and partial(out).is_dir()
    code, _, err = medtune(["merge", "--run", run, "--out", out], capsys)
    assert code == 0 and f"removed {partial(out)}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]


def test_ctrl_c_in_the_reload_check_leaves_nothing(run, tmp_path, capsys, monkeypatch):
    from medtune.export import merge as merge_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(merge_module, "_check", interrupted)
    out = tmp_path / "merged"
    code, _, err = medtune(["merge", "--run", run, "--out", out], capsys)
    assert code == 130, err
    assert list(tmp_path.iterdir()) == []  # neither --out nor its partial folder


def test_a_failed_check_keeps_the_partial_folder_and_names_it(run, tmp_path, capsys, monkeypatch):
    from medtune.export import merge as merge_module

    monkeypatch.setitem(merge_module.TOLERANCE, "float32", -1.0)  # no merged model can pass: the check fails
    out = tmp_path / "merged"
    code, _, err = medtune(["merge", "--run", run, "--out", out], capsys)
    assert code == 2 and "differs from base + adapter" in err
    assert f"kept for inspection in {partial(out)}" in err
    assert not out.exists() and (partial(out) / "model.safetensors").is_file()


# ---------------------------------------------------------------- export --to mlx / --from mlx


def test_an_export_to_mlx_killed_after_the_weights_does_not_block_the_rerun(run, tmp_path, capsys):
    out = tmp_path / "mlx"
    killed_at("safetensors.numpy:save_file", "after", "export", "--run", run, "--to", "mlx", "--out", out)
    assert not out.exists() and partial(out).is_dir()
    code, stdout, err = medtune(["export", "--run", run, "--to", "mlx", "--out", out], capsys)
    assert code == 0, err
    assert f"removed {partial(out)}, left by an earlier export that did not finish" in err
    assert {p.name for p in out.iterdir()} == {"adapters.safetensors", "adapter_config.json"}
    assert "wrote mlx-lm adapter" in stdout and not partial(out).exists()


def test_an_export_from_mlx_killed_after_its_config_leaves_no_adapter_to_load(run, tiny_llama, tmp_path, capsys):
    mlx = tmp_path / "mlx"
    assert main(["export", "--run", str(run), "--to", "mlx", "--out", str(mlx)]) == 0
    back = tmp_path / "back"
    # PEFT writes adapter_config.json first, then medtune the weights: killed in between
    killed_at("safetensors.numpy:save_file", "before", "export", "--from", "mlx", mlx, "--model", tiny_llama,
              "--out", back)
    assert not back.exists()
    generate = ["generate", "--adapter", back, "--model", tiny_llama, "--engine", "transformers", "--max-tokens", "2",
                "hi"]
    code, _, err = medtune(generate, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, stdout, err = medtune(["export", "--from", "mlx", mlx, "--model", tiny_llama, "--out", back], capsys)
    assert code == 0 and f"removed {partial(back)}" in err
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in back.iterdir()}
    code, stdout, err = medtune(generate, capsys)
    assert code == 0, err


def test_ctrl_c_in_an_mlx_export_leaves_nothing(run, tmp_path, capsys, monkeypatch):
    import safetensors.numpy

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.numpy, "save_file", interrupted)
    out = tmp_path / "mlx"
    code, _, _ = medtune(["export", "--run", run, "--to", "mlx", "--out", out], capsys)
    assert code == 130 and list(tmp_path.iterdir()) == []


def test_an_empty_out_folder_is_filled_and_a_full_one_still_refused(run, tmp_path, capsys):
    out = tmp_path / "mlx"
    out.mkdir()
    code, _, err = medtune(["export", "--run", run, "--to", "mlx", "--out", out], capsys)
    assert code == 0 and (out / "adapters.safetensors").is_file(), err
    code, _, err = medtune(["export", "--run", run, "--to", "mlx", "--out", out], capsys)
    assert code == 2 and "already exists and is not an empty folder" in err
    shutil.rmtree(out)


# ---------------------------------------------------------------- export --to gguf (a stand-in llama.cpp converter)

STAND_IN_CONVERTER = """import sys
open(sys.argv[sys.argv.index("--outfile") + 1], "wb").write(b"GGUF from a stand-in converter")
"""


def converter(folder: Path) -> Path:
    folder.mkdir()
    (folder / "convert_hf_to_gguf.py").write_text(STAND_IN_CONVERTER)
    return folder


def test_a_gguf_export_killed_before_its_modelfile_is_removed_by_the_rerun(run, tmp_path, capsys):
    out, llama_cpp = tmp_path / "gguf", converter(tmp_path / "llama.cpp")
    argv = ["export", "--run", run, "--to", "gguf", "--out", out, "--llama-cpp", llama_cpp, "--no-check"]
    killed_at("medtune.export.gguf:_write_modelfile", "before", *argv)
    assert not out.exists() and partial(out).is_dir()
    code, _, err = medtune(argv, capsys)
    assert code == 0, err
    assert f"removed {partial(out)}, left by an earlier export that did not finish" in err
    assert {"Modelfile", "medtune_export.json"} <= {p.name for p in out.iterdir()} and not partial(out).exists()


def test_a_gguf_export_whose_merge_fails_its_check_leaves_nothing(run, tmp_path, capsys, monkeypatch):
    from medtune.export import merge as merge_module

    monkeypatch.setitem(merge_module.TOLERANCE, "float32", -1.0)
    out = tmp_path / "gguf"
    code, _, err = medtune(["export", "--run", run, "--to", "gguf", "--out", out, "--llama-cpp",
                            converter(tmp_path / "llama.cpp"), "--no-check"], capsys)
    assert code == 2 and "GGUF export: the merged model differs from base + adapter" in err
    assert "nothing was written" in err and "kept for inspection" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["llama.cpp"]
