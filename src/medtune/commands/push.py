"""`medtune push --run DIR --repo owner/name [--merged] [--private] [--dry-run]`: the run's adapter (or, with
--merged, its merged model, made with medtune merge into <run>/merged when missing) to the Hugging Face Hub, with a
model card the Hub understands. The token comes from HF_TOKEN or `huggingface-cli login`, read by huggingface_hub
and never written anywhere. --dry-run lists what would be uploaded and prints the card, with no network."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from medtune.errors import MedtuneError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("--run", required=True, help="a medtune run directory")
    parser.add_argument("--repo", required=True, help="the Hub repository, owner/name")
    parser.add_argument("--merged", action="store_true", help="push the merged model instead of the adapter")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--dry-run", action="store_true", help="list the files and print the card; upload nothing")


def main(args: argparse.Namespace) -> int:
    from medtune import config as config_mod
    from medtune.export.hub_card import hub_card, metadata
    from medtune.rundir import RunDir

    run = RunDir(args.run)
    if not run.is_run():
        raise MedtuneError(f"{args.run}: no config.yaml here, so it is not a medtune run directory")
    if args.repo.count("/") != 1:
        raise MedtuneError(f"--repo {args.repo!r}: give owner/name")
    if not args.dry_run:
        _check_hub(args.repo)  # before anything is built: a merge of an 8B model is not free
    cfg = config_mod.load(run.config)
    folder = _merged(run) if args.merged else run.weights_dir(cfg.method)
    if not folder.is_dir():
        raise MedtuneError(f"{folder}: nothing to push (has the run finished training?)")
    files = _files(folder, run)
    card = hub_card(cfg, run, args.merged)
    if args.dry_run:
        print(f"would create {'a private' if args.private else 'a public'} model repository {args.repo} and upload:")
        print("\n".join(f"  {name}  ({path.stat().st_size:,} bytes)" for name, path in files.items()))
        base = metadata(cfg, args.merged).get("base_model")
        if base and "adapter_config.json" in files:
            print(f"  (adapter_config.json's base_model_name_or_path set to {base}, not this machine's folder)")
        print(f"  README.md  (the card below, {len(card.encode()):,} bytes)\n\n{card}")
        return 0
    _upload(args.repo, args.private, files, card, metadata(cfg, args.merged).get("base_model"))
    print(f"pushed {len(files) + 1} files to https://huggingface.co/{args.repo}")
    return 0


def _check_hub(repo: str) -> None:
    from medtune import hub

    found = hub.probe(repo)
    if found.state in (hub.OFFLINE, hub.UNREACHABLE):
        why = "HF_HUB_OFFLINE is set" if found.state == hub.OFFLINE else f"it cannot be reached ({found.reason})"
        raise MedtuneError(f"cannot push to {repo}: the Hugging Face Hub is needed and {why}; --dry-run shows what "
                           "would be uploaded")


def _merged(run) -> Path:
    """<run>/merged, merged again when the adapter is newer than it (a run resumed since): never a stale model."""
    from medtune.export.merge import INFO_FILE

    folder = run.root / "merged"
    weights_file = next(iter(sorted(run.adapter.glob("adapter_model.*"))), None)
    if folder.is_dir() and weights_file is not None and (folder / INFO_FILE).is_file() \
            and (folder / INFO_FILE).stat().st_mtime < weights_file.stat().st_mtime:
        print(f"medtune push: {folder} is older than {weights_file.name}: merging again", file=sys.stderr)
        shutil.rmtree(folder)
    if not folder.is_dir():
        from medtune import config as config_mod
        from medtune.export.merge import merge
        from medtune.inference import weights

        merge(weights.resolve(config_mod.load(run.config), run=str(run.root)), folder)
    return folder


def _files(folder: Path, run) -> dict[str, Path]:
    """Repository path -> local file: the weights folder (its own README.md replaced by the card), the loss plot."""
    from medtune.rundir import STATE_FILES

    # training_args.bin is a pickle of the Trainer's settings: of no use to a reader, and the Hub flags pickles
    files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != "README.md" and p.name not in STATE_FILES}
    if run.loss_plot.is_file():
        files["plots/loss.png"] = run.loss_plot
    return files


def _upload(repo: str, private: bool, files: dict[str, Path], card: str, base: str | None) -> None:
    from huggingface_hub import HfApi

    api = HfApi()  # reads HF_TOKEN or the saved login itself; medtune never sees or writes the token
    api.create_repo(repo, private=private, exist_ok=True, repo_type="model")
    with tempfile.TemporaryDirectory() as tmp:  # one commit: the files as they will sit in the repository
        stage = Path(tmp)
        for name, path in files.items():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, stage / name)
        if base and (stage / "adapter_config.json").is_file():  # a folder on this machine means nothing there
            config = json.loads((stage / "adapter_config.json").read_text(encoding="utf-8"))
            config["base_model_name_or_path"] = base
            (stage / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (stage / "README.md").write_text(card, encoding="utf-8")
        api.upload_folder(folder_path=str(stage), repo_id=repo, repo_type="model",
                          commit_message="medtune push")
