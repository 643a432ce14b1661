"""`medtune push`: --dry-run lists the files and prints a card whose YAML the Hub reads (with the run's evaluation
when there is one) and writes nothing, not even the merge a --merged push would start with; the card names no path
of this machine and describes what is pushed (an adapter on its base, or a plain transformers model); --merged
merges once, and again when the adapter is newer; the config and key=value overrides apply as for every verb; the
token is never written, and without the Hub the push stops in seconds, before anything is built."""

import shutil
import time
from pathlib import Path

import huggingface_hub
import pytest
import yaml
from eval_helpers import EVAL_DIR
from inference_helpers import make_run

from medtune.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
SECRET = "hf_medtuneTestSecret0123456789"
HUB_BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def card_of(out: str) -> str:
    return out[out.index("---\n"):]


def snapshot(folder: Path) -> dict:
    """Every path under `folder` with its size and modification time: what a dry run must leave as it was."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_llama):
    run = make_run(tiny_llama, tmp_path_factory.mktemp("push") / "run")
    assert main(["eval", "--run", str(run), "--task", "medqa", "--data-dir", str(EVAL_DIR), "--limit", "2"]) == 0
    return run


class FakeHub:
    """huggingface_hub.HfApi as push and the hub probe use it, keeping what would be uploaded: no network."""

    uploads: list = []  # copies of each uploaded folder, kept under `keep`
    keep: Path

    def model_info(self, repo_id, timeout=None):
        return None  # the probe: reachable

    def create_repo(self, repo_id, private=False, exist_ok=False, repo_type=None):
        pass

    def upload_folder(self, folder_path, repo_id, repo_type=None, commit_message=None):
        copy = self.keep / f"upload-{len(self.uploads)}"
        FakeHub.uploads.append(Path(shutil.copytree(folder_path, copy)))


def test_dry_run_lists_the_adapter_and_prints_a_card_the_hub_reads(run, tiny_llama, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    capsys.readouterr()
    assert main(["push", "--run", str(run), "--repo", "me/med-adapter", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would create a public model repository me/med-adapter" in out
    assert "adapter_model.safetensors" in out and "adapter_config.json" in out and "training_args.bin" not in out
    card = card_of(out)
    meta = front_matter(card)
    assert meta["library_name"] == "peft" and "medical" in meta["tags"] and meta["pipeline_tag"] == "text-generation"
    assert "base_model" not in meta  # a folder of this machine is no Hub id
    assert "## Evaluation" in card and "| base |" not in card and "medqa" in card and "Intended use" in card
    assert str(tiny_llama) not in card and str(run) not in card and f"a local model, `{tiny_llama.name}`" in card
    assert 'PeftModel.from_pretrained(base, "me/med-adapter")' in card
    assert SECRET not in out and not any(SECRET in p.read_text(errors="ignore") for p in run.rglob("*") if p.is_file())


def test_an_adapter_on_a_hub_base_names_it_by_its_id(run, capsys):
    assert main(["push", "--run", str(run), "--repo", "me/med-adapter", "--dry-run", f"model.name={HUB_BASE}"]) == 0
    out = capsys.readouterr().out
    meta = front_matter(card_of(out))
    assert meta["base_model"] == HUB_BASE and meta["library_name"] == "peft" and "lora" in meta["tags"]
    assert f"adapter_config.json's base_model_name_or_path set to {HUB_BASE}" in out
    assert f'AutoModelForCausalLM.from_pretrained("{HUB_BASE}")' in card_of(out)


def test_merged_dry_run_says_a_merge_comes_first_and_writes_nothing(run, tiny_llama, capsys):
    before = snapshot(run)
    assert main(["push", "--run", str(run), "--repo", "me/med-merged", "--merged", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert snapshot(run) == before and not (run / "merged").exists()
    assert f"would first merge the adapter into its base as medtune merge does (merged/ does not exist yet), " \
           f"writing {run / 'merged'}:" in out and "model.safetensors" in out and "config.json" in out
    card = card_of(out)
    meta = front_matter(card)
    assert meta["library_name"] == "transformers" and "lora" not in meta["tags"] and "base_model" not in meta
    assert "peft" not in card.lower() and str(tiny_llama) not in card and str(run) not in card
    assert f"A fine-tune of a local model, `{tiny_llama.name}`" in card
    assert 'AutoModelForCausalLM.from_pretrained("me/med-merged")' in card


def test_merged_card_names_a_hub_base_by_its_id(run, capsys):
    assert main(["push", "--run", str(run), "--repo", "me/med-merged", "--merged", "--dry-run",
                 f"model.name={HUB_BASE}"]) == 0
    card = card_of(capsys.readouterr().out)
    meta = front_matter(card)
    assert meta["base_model"] == HUB_BASE and meta["library_name"] == "transformers"
    assert f"A fine-tune of [`{HUB_BASE}`](https://huggingface.co/{HUB_BASE})" in card
    assert "peft" not in card.lower() and "adapter_config" not in card


def test_merged_push_merges_once_and_again_when_the_adapter_is_newer(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    monkeypatch.setattr(FakeHub, "keep", tmp_path, raising=False)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    FakeHub.uploads.clear()
    assert main(["push", "--run", str(run), "--repo", "me/med-merged", "--merged"]) == 0
    assert "merged/ does not exist yet: merging first" in capsys.readouterr().err
    uploaded = FakeHub.uploads[-1]
    assert (uploaded / "model.safetensors").is_file() and (uploaded / "config.json").is_file()
    assert front_matter((uploaded / "README.md").read_text())["library_name"] == "transformers"
    assert not (uploaded / "adapter_config.json").exists() and not (uploaded / "medtune_merge.json").exists()
    shared = (uploaded / "config.yaml").read_text()
    assert str(tmp_path.parent) not in shared and str(run) not in shared  # no path of this machine
    assert yaml.safe_load(shared)["output_dir"] == run.name and (run / "merged" / "medtune_merge.json").is_file()
    merged_at = (run / "merged" / "model.safetensors").stat().st_mtime_ns
    assert main(["push", "--run", str(run), "--repo", "me/med-merged", "--merged"]) == 0
    assert "merging" not in capsys.readouterr().err
    assert (run / "merged" / "model.safetensors").stat().st_mtime_ns == merged_at
    # the adapter changes afterwards (a resumed run): a dry run says so and leaves the old merge alone
    adapter_file = run / "adapter" / "adapter_model.safetensors"
    adapter_file.write_bytes(adapter_file.read_bytes())  # newer than merged/
    assert main(["push", "--run", str(run), "--repo", "me/med-merged", "--merged", "--dry-run"]) == 0
    assert "(merged/ is older than adapter_model.safetensors)" in capsys.readouterr().out
    assert (run / "merged" / "model.safetensors").stat().st_mtime_ns == merged_at
    assert main(["push", "--run", str(run), "--repo", "me/med-merged", "--merged"]) == 0
    assert "merged/ is older than adapter_model.safetensors: merging again" in capsys.readouterr().err
    assert (run / "merged" / "model.safetensors").stat().st_mtime_ns > merged_at
    assert not any(SECRET in p.read_text(errors="ignore") for p in run.rglob("*") if p.is_file())


def test_config_and_overrides_apply_as_for_every_verb(run, tmp_path, capsys):
    other = tmp_path / "other.yaml"
    shutil.copy(run / "config.yaml", other)
    assert main(["push", "--run", str(run), "--repo", "me/a", "--dry-run", "--config", str(other),
                 "training.learning_rate=0.125"]) == 0
    assert "| learning rate, scheduler | 0.125," in capsys.readouterr().out  # the card describes that config
    assert main(["push", "--run", str(run), "--repo", "me/a", "--dry-run", str(other),
                 "generation.temperature=0.3"]) == 0  # a key push has no use for: accepted, as elsewhere
    capsys.readouterr()
    assert main(["push", "--run", str(run), "--repo", "me/a", "--dry-run", "training.learning_rat=1e-3"]) == 2
    assert "learning_rate" in capsys.readouterr().err  # the closest valid key, as every verb says


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
