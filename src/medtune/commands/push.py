"""`medtune push --run DIR --repo owner/name [CONFIG] [key=value ...] [--merged] [--private] [--dry-run]`: the
run's adapter (or, with --merged, its merged model, made as medtune merge makes it into <run>/merged when missing
or older than the adapter) to the Hugging Face Hub, with a model card the Hub understands. The token comes from
HF_TOKEN or `huggingface-cli login`, read by huggingface_hub and never written anywhere. --dry-run lists what
would be uploaded (and the merge that would come first) and prints the card, with no network and nothing written.

The config is the run's config.yaml, or the one given; key=value overrides apply on top, as for every verb. It is
what the card describes and what a --merged push merges with: model.name=microsoft/Phi-4-mini-instruct, for one,
names the Hub base of a run trained on a local copy of it, in the card and in adapter_config.json."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from medtune.commands.args import add_config_arguments, config_from_args
from medtune.errors import MedtuneError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--run", required=True, help="a medtune run directory")
    parser.add_argument("--repo", required=True, help="the Hub repository, owner/name")
    parser.add_argument("--merged", action="store_true", help="push the merged model instead of the adapter")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--dry-run", action="store_true", help="list the files (and the merge --merged would do "
                        "first) and print the card; upload nothing, write nothing")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from medtune.export.hub_card import base_model, hub_card
    from medtune.inference import weights
    from medtune.rundir import RunDir

    run = RunDir(args.run)
    if not run.is_run():
        raise MedtuneError(f"{args.run}: no config.yaml here, so it is not a medtune run directory")
    if args.repo.count("/") != 1:
        raise MedtuneError(f"--repo {args.repo!r}: give owner/name")
    cfg = config_from_args(args, beside=run.config)  # the run's own config unless one is given
    trained = run.weights_dir(cfg.method)
    if not trained.is_dir():
        raise MedtuneError(f"{trained}: nothing to push (has the run finished training?)")
    if args.merged and cfg.method == "full":
        raise MedtuneError(f"--merged: {trained} is a whole model already (a full fine-tune); push without --merged")
    source = weights.resolve(cfg, run=str(run.root))  # model.name as training meant it (a relative folder)
    folder = run.root / "merged" if args.merged else trained
    why = _merge_needed(folder, source) if args.merged else None
    card = hub_card(source.config, run, args.repo, args.merged)
    base = base_model(source.config)
    if args.dry_run:
        _dry_run(args, run, folder, why, card, base)
        return 0
    _check_hub(args.repo)  # before anything is built: a merge of an 8B model is not free
    if why:
        _merge(folder, source, why)
    files = _files(folder, run)
    _upload(args.repo, args.private, files, card, base)
    print(f"pushed {len(files) + 1} files to https://huggingface.co/{args.repo}")
    return 0


def _dry_run(args, run, folder: Path, why: str | None, card: str, base: str | None) -> None:
    """What a push would do, read from disk only: no merge, no network, no file written."""
    from medtune.export.merge import WRITES

    if why:
        print(f"would first merge the adapter into its base as medtune merge does ({why}), writing {folder}:")
        print("\n".join(f"  {line}" for line in WRITES))
    print(f"would create {'a private' if args.private else 'a public'} model repository {args.repo} and upload:")
    if why:
        print(f"  the files of {folder} listed above (but its README.md; sizes known once merged)")
    files = _files(None if why else folder, run)  # a folder to be merged again: its files now are not pushed
    for name, path in files.items():
        print(f"  {name}  ({path.stat().st_size:,} bytes)")
    if base and "adapter_config.json" in files:
        print(f"  (adapter_config.json's base_model_name_or_path set to {base}, not this machine's folder)")
    print(f"  README.md  (the card below, {len(card.encode()):,} bytes)\n\n{card}")


def _check_hub(repo: str) -> None:
    from medtune import hub

    found = hub.probe(repo)
    if found.state in (hub.OFFLINE, hub.UNREACHABLE):
        why = "HF_HUB_OFFLINE is set" if found.state == hub.OFFLINE else f"it cannot be reached ({found.reason})"
        raise MedtuneError(f"cannot push to {repo}: the Hugging Face Hub is needed and {why}; --dry-run shows what "
                           "would be uploaded")


def _merge_needed(folder: Path, source) -> str | None:
    """Why <run>/merged must be (re)made before it is pushed, or None when it holds this adapter merged into this
    base: never a stale model (a run resumed since, or another base given)."""
    from medtune.export.merge import INFO_FILE

    info = folder / INFO_FILE
    if not folder.exists():
        return f"{folder.name}/ does not exist yet"
    if not info.is_file():  # not a folder merge wrote (it renames a checked one into place): never push that
        raise MedtuneError(f"{folder} has no {INFO_FILE}, so no checked merge: remove it, and push merges again")
    weights_file = next(iter(sorted(source.adapter.glob("adapter_model.*"))), None)
    if weights_file is not None and info.stat().st_mtime < weights_file.stat().st_mtime:
        return f"{folder.name}/ is older than {weights_file.name}"
    merged_base = json.loads(info.read_text(encoding="utf-8")).get("base")
    if merged_base != source.config.model.name:
        return f"{folder.name}/ was merged into {merged_base}, not {source.config.model.name}"
    return None


def _merge(folder: Path, source, why: str) -> None:
    from medtune.export.merge import merge

    print(f"medtune push: {why}: merging {'again' if folder.exists() else 'first'}", file=sys.stderr)
    shutil.rmtree(folder, ignore_errors=True)  # <run>/merged is push's own: checked above to be out of date
    merge(source, folder)


def _files(folder: Path | None, run) -> dict[str, Path]:
    """Repository path -> local file: the weights folder (its own README.md replaced by the card), the loss plot."""
    from medtune.export.merge import INFO_FILE
    from medtune.rundir import STATE_FILES

    # training_args.bin is a pickle of the Trainer's settings: of no use to a reader, and the Hub flags pickles;
    # medtune_merge.json is the merge's check of this machine's files (push's own bookkeeping, full of local paths)
    found = sorted(folder.rglob("*")) if folder is not None and folder.is_dir() else []
    files = {p.relative_to(folder).as_posix(): p for p in found
             if p.is_file() and p.name not in ("README.md", INFO_FILE) and p.name not in STATE_FILES}
    if run.loss_plot.is_file():
        files["plots/loss.png"] = run.loss_plot
    return files


def _upload(repo: str, private: bool, files: dict[str, Path], card: str, base: str | None) -> None:
    from huggingface_hub import HfApi

    from medtune.export.hub_card import public_config

    api = HfApi()  # reads HF_TOKEN or the saved login itself; medtune never sees or writes the token
    api.create_repo(repo, private=private, exist_ok=True, repo_type="model")
    with tempfile.TemporaryDirectory() as tmp:  # one commit: the files as they will sit in the repository
        stage = Path(tmp)
        for name, path in files.items():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, stage / name)
        if (stage / "config.yaml").is_file():  # the run's config, without this machine's paths
            text = public_config((stage / "config.yaml").read_text(encoding="utf-8"))
            (stage / "config.yaml").write_text(text, encoding="utf-8")
        if base and (stage / "adapter_config.json").is_file():  # a folder on this machine means nothing there
            config = json.loads((stage / "adapter_config.json").read_text(encoding="utf-8"))
            config["base_model_name_or_path"] = base
            (stage / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (stage / "README.md").write_text(card, encoding="utf-8")
        api.upload_folder(folder_path=str(stage), repo_id=repo, repo_type="model",
                          commit_message="medtune push")
