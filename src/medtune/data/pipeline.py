"""What `medtune prepare` does, callable by training: load, detect, normalise, deduplicate, split, mix refusal
demonstrations into train, render, encode, apply the length policy and audit; the report says what happened to
every record.

The same function runs inside `medtune train`, so what is trained is exactly what prepare reports.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from medtune.config import Config
from medtune.data import folders, formats, hygiene, safety_mix, sources, split
from medtune.data.records import Record
from medtune.data.templates import render
from medtune.data.tokenize import Encoded, apply_overlong, encode_batch, length_audit
from medtune.errors import ConfigError, DataError
from medtune.rundir import RunDir

SPLIT_FILES = {"train": "train_file", "valid": "valid_file", "test": "test_file"}


def prepared_dir(cfg: Config) -> Path:
    """Where prepare writes (and training rewrites) the split files: data.prepared_dir, else <run>/data."""
    return Path(cfg.data.prepared_dir) if cfg.data.prepared_dir else RunDir(cfg.output_dir).data


@dataclass
class Prepared:
    splits: dict[str, list[Record]]  # every record of each split (test is never cut by the length policy)
    encoded: dict[str, list[Encoded]] = field(default_factory=dict)  # train/valid after the overlong policy
    report: dict = field(default_factory=dict)


def prepare(cfg: Config, tokenizer=None) -> Prepared:
    """Records from the configured sources, split, and (with a tokenizer) encoded and length-audited."""
    started = time.perf_counter()
    report: dict = {"notes": []}
    cfg = with_prepared_splits(cfg, report)
    records = _load_train(cfg, report)
    splits = _split(cfg, records, report)
    if cfg.data.safety_examples is not None:  # training only: valid/test measure the data, not the refusals
        splits["train"], report["safety_examples"] = safety_mix.mix_into_train(
            splits["train"], cfg.data.safety_examples, cfg.seed)
    prepared = Prepared(splits, report=report)
    report["counts"]["splits"] = {name: len(recs) for name, recs in splits.items()}
    report["overlap"] = hygiene.split_overlap(splits)
    if cfg.data.leakage_files:
        report["leakage"] = hygiene.leakage(splits["train"], [str(p) for p in cfg.data.leakage_files])
    if tokenizer is not None:
        _encode(cfg, tokenizer, prepared)
    else:
        report["notes"].append("no model.name given: token-length audit skipped")
    report["seconds"] = round(time.perf_counter() - started, 2)
    return prepared


def with_prepared_splits(cfg: Config, report: dict) -> Config:
    """data.train_file naming a folder of split files (prepare's output, mlx-lm's --data layout) means its
    train/valid/test.jsonl as they are, not train.jsonl split again."""
    folder = Path(cfg.data.train_file or "")
    if not (folder.is_dir() and (folder / "train.jsonl").is_file()):
        return cfg
    ours = {(folder / f"{name}.jsonl").resolve() for name in SPLIT_FILES}
    if any(f.resolve() not in ours for files in folders.data_files(folder).values() for f in files):
        return cfg  # a hub-style folder (validation.jsonl, data/test-*.parquet, ...): read by its own split names
    files = {key: str(folder / f"{name}.jsonl") for name, key in SPLIT_FILES.items()
             if (folder / f"{name}.jsonl").is_file() and not (name != "train" and getattr(cfg.data, key))}
    given = {name: files.get(key) or (getattr(cfg.data, key) if name != "train" else None)
             for name, key in SPLIT_FILES.items()}
    report["notes"].append(f"{folder} holds split files: used as they are ("
                           + ", ".join(f"{n} {p}" for n, p in given.items() if p) + ")")
    data = dataclasses.replace(cfg.data, **files, split="1,0")  # nothing is cut from train.jsonl (no empty test split)
    return dataclasses.replace(cfg, data=data)


def _load_train(cfg: Config, report: dict) -> list[Record]:
    if not cfg.data.train_file:
        raise ConfigError("no training data: set data.train_file (or pass --data FILE)")
    records, fmt = _read(cfg, cfg.data.train_file, report)
    counts = {"read": len(records) + len(report["bad_lines"])}
    if cfg.data.limit is not None:
        records = records[: cfg.data.limit]
        counts["after_limit"] = len(records)
    if cfg.data.dedup:
        records, n_dup, dup_sources = hygiene.dedup(records)
        counts["duplicates_removed"] = n_dup
        report["duplicates"] = dup_sources
    report["detected_format"] = fmt
    report["counts"] = counts
    if not records:
        raise DataError(f"{cfg.data.train_file}: no records left to train on")
    return records


def _read(cfg: Config, path: str, report: dict, part: str | None = None) -> tuple[list[Record], str]:
    """Records of one source; part: the split of a folder or hub dataset (default data.hub_split)."""
    rows, bad = sources.load_rows(path, hub_config=cfg.data.hub_config, hub_split=part or cfg.data.hub_split,
                                  skip_bad=cfg.data.skip_bad)
    report.setdefault("bad_lines", []).extend(bad)
    fmt = cfg.data.format
    if fmt == "auto" and not cfg.data.columns:
        fmt = formats.detect_dataset_format(rows)
    bad_records = report["bad_lines"] if cfg.data.skip_bad else None  # --skip-bad also skips empty fields
    records = formats.convert(rows, fmt=fmt, columns=cfg.data.columns or None, bad=bad_records)
    return records, ("columns" if cfg.data.columns else fmt)


def _split(cfg: Config, records: list[Record], report: dict) -> dict[str, list[Record]]:
    """Ratios from data.split; a split whose file is given, or that the train_file folder holds, comes from there."""
    names = ["train", "valid", "test"]
    ratios = dict(zip(names, split.parse_ratios(cfg.data.split)))
    given = {n: (getattr(cfg.data, SPLIT_FILES[n]), cfg.data.hub_split) for n in ("valid", "test")
             if getattr(cfg.data, SPLIT_FILES[n])}
    given = {**folder_splits(cfg, report), **given}
    cut = {n: r for n, r in ratios.items() if n not in given}
    total = sum(cut.values())
    parts = split.split_records(records, tuple(r / total for r in cut.values()), cfg.seed)
    splits = dict(zip(cut, parts.values()))
    for name, (path, part) in sorted(given.items()):
        splits[name], _ = _read(cfg, path, report, part)
        report["counts"].setdefault("read_apart", {})[name] = len(splits[name])
    return {n: splits[n] for n in names if n in splits}


def folder_splits(cfg: Config, report: dict) -> dict[str, tuple[str, str]]:
    """{valid/test: (folder, split)} for the validation and test splits a train_file folder holds (a saved
    DatasetDict, a hub snapshot), unless data.valid_file / test_file say otherwise: they are not split again."""
    path = Path(cfg.data.train_file)
    if not path.is_dir() or folders.split_name(cfg.data.hub_split) != "train":
        return {}
    held = folders.split_names(path, cfg.data.hub_config)
    found = {"valid": next((n for n in folders.VALID_NAMES if n in held), None),
             "test": "test" if "test" in held else None}
    found = {n: (str(path), part) for n, part in found.items() if part and not getattr(cfg.data, SPLIT_FILES[n])}
    if found:
        report["notes"].append(f"{path} holds splits {', '.join(held)}: "
                               + ", ".join(f"its {part} split is {n}" for n, (_, part) in found.items())
                               + " (data.valid_file / data.test_file choose others)")
    return found


def _encode(cfg: Config, tokenizer, prepared: Prepared) -> None:
    audit, dropped, truncated = {}, {}, {}
    for name in ("train", "valid"):
        recs = prepared.splits.get(name, [])
        enc = encode_records(cfg, tokenizer, recs, prepared.report["notes"])
        audit[name] = length_audit(enc, cfg.model.max_length)
        prepared.encoded[name], dropped[name] = apply_overlong(enc, cfg.model.max_length, cfg.data.overlong)
        if cfg.data.overlong == "truncate":
            kept = {e.source for e in prepared.encoded[name]}
            truncated[name] = [e.source for e in enc if e.overflow(cfg.model.max_length) and e.source in kept]
    if truncated:
        prepared.report["truncated"] = truncated
    prepared.report["length"] = {"policy": cfg.data.overlong, "tokenizer": tokenizer.name_or_path, **audit}
    prepared.report["dropped"] = dropped
    prepared.report["counts"]["kept"] = {n: len(e) for n, e in prepared.encoded.items()}


def encode_records(cfg: Config, tokenizer, records: list[Record], notes: list[str] | None = None) -> list[Encoded]:
    """Render with the configured template and system prompt, then tokenize with the loss mask."""
    keep = cfg.data.reasoning == "keep"
    rendered = [render(r, tokenizer, cfg.data.template, cfg.data.system_prompt, keep) for r in records]
    for note in {n for r in rendered for n in r.notes}:
        if notes is not None and note not in notes:
            notes.append(note)
    return encode_batch(rendered, tokenizer, [r.source for r in records], cfg.training.train_on_prompt)
