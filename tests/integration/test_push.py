"""`medtune push`: --dry-run lists the files and prints a card whose YAML the Hub reads (with the run's evaluation
when there is one), --merged pushes the merged model, the token is never written, and without the Hub the push
stops in seconds, before anything is built."""

import time

import pytest
import yaml
from eval_helpers import EVAL_DIR
from inference_helpers import make_run

from medtune.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
SECRET = "hf_medtuneTestSecret0123456789"


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_llama):
    run = make_run(tiny_llama, tmp_path_factory.mktemp("push") / "run")
    assert main(["eval", "--run", str(run), "--task", "medqa", "--data-dir", str(EVAL_DIR), "--limit", "2"]) == 0
    return run


def test_dry_run_lists_the_adapter_and_prints_a_card_the_hub_reads(run, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    capsys.readouterr()
    assert main(["push", "--run", str(run), "--repo", "me/med-adapter", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would create a public model repository me/med-adapter" in out
    assert "adapter_model.safetensors" in out and "adapter_config.json" in out and "training_args.bin" not in out
    card = out[out.index("---\n"):]
    meta = front_matter(card)
    assert meta["library_name"] == "peft" and "medical" in meta["tags"] and meta["pipeline_tag"] == "text-generation"
    assert "## Evaluation" in card and "| base |" not in card and "medqa" in card and "Intended use" in card
    assert SECRET not in out and not any(SECRET in p.read_text(errors="ignore") for p in run.rglob("*") if p.is_file())


def test_merged_dry_run_merges_once_and_pushes_a_transformers_model(run, capsys):
    assert main(["push", "--run", str(run), "--repo", "me/med-merged", "--merged", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert (run / "merged" / "model.safetensors").is_file() and "model.safetensors" in out
    assert front_matter(out[out.index("---\n"):])["library_name"] == "transformers"
    # the adapter changes afterwards (a resumed run): the next push merges again instead of sending the old model
    merged_at = (run / "merged" / "model.safetensors").stat().st_mtime_ns
    adapter_file = run / "adapter" / "adapter_model.safetensors"
    adapter_file.write_bytes(adapter_file.read_bytes())  # newer than merged/
    assert main(["push", "--run", str(run), "--repo", "me/med-merged", "--merged", "--dry-run"]) == 0
    assert "merging again" in capsys.readouterr().err
    assert (run / "merged" / "model.safetensors").stat().st_mtime_ns > merged_at


def test_without_the_hub_it_stops_at_once_and_builds_nothing(tiny_llama, tmp_path, capsys):
    from medtune import hub

    run = make_run(tiny_llama, tmp_path / "run")
    if hub.probe("me/med-adapter").state == hub.REACHABLE:
        pytest.skip("the hub is reachable here: a real push would be attempted")
    start = time.perf_counter()
    assert main(["push", "--run", str(run), "--repo", "me/x", "--merged"]) == 2
    err = capsys.readouterr().err
    assert "cannot push to me/x: the Hugging Face Hub is needed" in err and "--dry-run" in err
    assert time.perf_counter() - start < 20 and len(err.strip().splitlines()) == 1
    assert not (run / "merged").exists()  # checked before the merge, not after it
    assert main(["push", "--run", str(tmp_path), "--repo", "me/x", "--dry-run"]) == 2
    assert "not a medtune run directory" in capsys.readouterr().err
