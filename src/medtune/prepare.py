"""`medtune prepare`: load, detect, normalise, split, template, audit; write mlx-lm-readable split files.

The same pipeline runs inside `medtune train`, so what is trained is exactly what prepare reports.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from medtune.cliargs import add_config_arguments, load_config
from medtune.config import Config
from medtune.data import formats, hygiene, sources, split
from medtune.data.records import Record, assistant_text
from medtune.data.templates import render, with_system
from medtune.data.tokenize import Encoded, apply_overlong, encode_batch, length_audit
from medtune.errors import ConfigError, DataError

SPLIT_FILES = {"train": "train_file", "valid": "valid_file", "test": "test_file"}


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
    prepared = Prepared(splits, report=report)
    report["counts"]["splits"] = {name: len(recs) for name, recs in splits.items()}
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
    import dataclasses

    folder = Path(cfg.data.train_file or "")
    if not (folder.is_dir() and (folder / "train.jsonl").is_file()):
        return cfg
    files = {key: str(folder / f"{name}.jsonl") for name, key in SPLIT_FILES.items()
             if (folder / f"{name}.jsonl").is_file() and not (name != "train" and getattr(cfg.data, key))}
    given = {name: files.get(key) or (getattr(cfg.data, key) if name != "train" else None)
             for name, key in SPLIT_FILES.items()}
    report["notes"].append(f"{folder} holds split files: used as they are ("
                           + ", ".join(f"{n} {p}" for n, p in given.items() if p) + ")")
    data = dataclasses.replace(cfg.data, **files, split="1,0,0")  # nothing is cut from train.jsonl
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


def _read(cfg: Config, path: str, report: dict) -> tuple[list[Record], str]:
    rows, bad = sources.load_rows(path, hub_config=cfg.data.hub_config, hub_split=cfg.data.hub_split,
                                  skip_bad=cfg.data.skip_bad)
    report.setdefault("bad_lines", []).extend(bad)
    fmt = cfg.data.format
    if fmt == "auto" and not cfg.data.columns:
        fmt = formats.detect_dataset_format(rows)
    bad_records = report["bad_lines"] if cfg.data.skip_bad else None  # --skip-bad also skips empty fields
    records = formats.convert(rows, fmt=fmt, columns=cfg.data.columns or None, bad=bad_records)
    return records, ("columns" if cfg.data.columns else fmt)


def _split(cfg: Config, records: list[Record], report: dict) -> dict[str, list[Record]]:
    """Ratios from data.split; a split whose file is given comes from that file instead."""
    names = ["train", "valid", "test"]
    ratios = dict(zip(names, split.parse_ratios(cfg.data.split)))
    given = {n for n in ("valid", "test") if getattr(cfg.data, SPLIT_FILES[n])}
    cut = {n: r for n, r in ratios.items() if n not in given}
    total = sum(cut.values())
    parts = split.split_records(records, tuple(r / total for r in cut.values()), cfg.seed)
    splits = dict(zip(cut, parts.values()))
    for name in sorted(given):
        splits[name], _ = _read(cfg, getattr(cfg.data, SPLIT_FILES[name]), report)
    return {n: splits[n] for n in names if n in splits}


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


# ---------------------------------------------------------------- output files


def output_row(record: Record, cfg: Config, tokenizer=None) -> dict:
    """One line of a split file in the chosen output format (all three are read by mlx-lm and by medtune)."""
    keep = cfg.data.reasoning == "keep"
    fmt = cfg.data.output_format
    if "text" in record.meta and not record.messages:  # a plain-text corpus has no turns: it stays text
        return {"text": record.meta["text"]}
    if fmt == "text":
        return {"text": render(record, tokenizer, cfg.data.template, cfg.data.system_prompt, keep).text}
    messages = with_system(record, cfg.data.system_prompt)
    if fmt == "chat":
        return {"messages": [{"role": m.role, "content": assistant_text(m, keep) if m.role == "assistant"
                              else m.content} for m in messages]}
    turns = [m for m in messages if m.role != "system"]
    if len(turns) != 2:
        raise DataError(f"{record.source}: output_format completions takes single-turn records; use chat")
    row = {"prompt": turns[0].content, "completion": assistant_text(turns[1], keep)}
    return {"system": record.system or cfg.data.system_prompt, **row} if messages[0].role == "system" else row


def write_outputs(prepared: Prepared, cfg: Config, out_dir: Path, tokenizer=None) -> list[Path]:
    """Render every file in memory first, then write each to a temporary name and rename it into place."""
    if cfg.data.output_format == "text" and tokenizer is None:
        raise ConfigError("output_format text renders the template: it needs model.name (a tokenizer)")
    written = {name: recs for name, recs in _written_records(prepared).items() if recs or name == "train"}
    contents = {
        f"{name}.jsonl": "".join(json.dumps(output_row(r, cfg, tokenizer), ensure_ascii=False) + "\n" for r in recs)
        for name, recs in written.items()
    }
    _note_output_caveats(prepared, cfg)
    contents["prepare_report.json"] = json.dumps(prepared.report, indent=2, ensure_ascii=False) + "\n"
    check_out_dir(out_dir, cfg)
    had_report = (out_dir / "prepare_report.json").is_file()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in contents.items():
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out_dir / name)
        paths.append(out_dir / name)
    if had_report:  # a split this run does not write must not survive from an earlier prepare into this folder
        for name in SPLIT_FILES:
            if f"{name}.jsonl" not in contents:
                (out_dir / f"{name}.jsonl").unlink(missing_ok=True)
    return paths


def _note_output_caveats(prepared: Prepared, cfg: Config) -> None:
    """Say what a reader of the files would otherwise not know."""
    notes = prepared.report["notes"]
    has_system = bool(cfg.data.system_prompt) or any(r.system for rs in prepared.splits.values() for r in rs)
    if cfg.data.output_format == "completions" and has_system:
        notes.append("output_format completions: the system prompt is in each row's 'system' key, which medtune "
                     "reads and mlx-lm ignores; use output_format chat to give it to mlx-lm")
    truncated = prepared.report.get("truncated", {})
    if any(truncated.values()):
        notes.append("data.overlong=truncate: the files keep each example whole; medtune train cuts the "
                     f"{sum(map(len, truncated.values()))} listed under 'truncated' to model.max_length="
                     f"{cfg.model.max_length} (mlx-lm cuts at its --max-seq-length)")


def check_out_dir(out_dir: Path, cfg: Config) -> None:
    """One line instead of a traceback when the output folder is a file or sits under one, or when writing
    there would overwrite the input data."""
    for p in (out_dir, *out_dir.parents):
        if p.exists() and not p.is_dir():
            raise ConfigError(f"output folder {out_dir}: {p} exists and is not a folder")
    clash = overwritten_input(out_dir, cfg)
    if clash:
        raise ConfigError(f"output folder {out_dir} would overwrite the input {clash}: choose another --out")


def overwritten_input(out_dir: Path, cfg: Config) -> str | None:
    """'data.train_file PATH' when writing the split files into out_dir would replace an input file."""
    outputs = {(out_dir / f"{name}.jsonl").resolve() for name in SPLIT_FILES}
    cfg = with_prepared_splits(cfg, {"notes": []})
    for key in SPLIT_FILES.values():
        given = getattr(cfg.data, key)
        if given and Path(given).resolve() in outputs:
            return f"data.{key} {given}"
    return None


def _written_records(prepared: Prepared) -> dict[str, list[Record]]:
    """Train/valid as kept by the length policy (when audited); test as split."""
    out = {}
    for name, recs in prepared.splits.items():
        if name in prepared.encoded:
            keep = {e.source for e in prepared.encoded[name]}
            recs = [r for r in recs if r.source in keep]
        out[name] = recs
    return out


# ---------------------------------------------------------------- the verb


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Load a dataset (jsonl/json/csv/parquet, a save_to_disk folder or a hub id), detect its layout, turn every "
        "record into system/user/assistant messages with <think>reasoning</think>answer, remove duplicates, split "
        "it with a seed, audit token lengths against model.max_length, and write train/valid/test .jsonl files "
        "(read by medtune train and by mlx_lm lora --data DIR) plus prepare_report.json."
    )
    add_config_arguments(parser)
    parser.add_argument("--data", help="training data file, folder or hub id (data.train_file)")
    parser.add_argument("--format", help="record layout, default auto (data.format)")
    parser.add_argument("--template", help="auto (tokenizer's chat template), phi-think, r1-cot, alpaca")
    parser.add_argument("--split", help="train,valid[,test] ratios, e.g. 0.8,0.2 or 0.7,0.2,0.1 (data.split)")
    parser.add_argument("--seed", type=int, help="seed of the split (seed)")
    parser.add_argument("--limit", type=int, help="use only the first N records (data.limit)")
    parser.add_argument("--model", help="model or tokenizer for the length audit (model.name)")
    parser.add_argument("--max-length", type=int, help="token limit of the audit (model.max_length)")
    parser.add_argument("--leakage", action="append", metavar="FILE",
                        help="evaluation file whose questions must not be in training (repeatable)")
    parser.add_argument("--output-format", choices=["chat", "text", "completions"], help="rows of the split files")
    parser.add_argument("--skip-bad", action="store_true", default=None,
                        help="skip malformed lines and records with a missing or empty field (listed in the report)")
    parser.add_argument("--out", help="output folder (default data.prepared_dir or <output_dir>/data)")


FLAG_KEYS = {
    "data": "data.train_file", "format": "data.format", "template": "data.template", "split": "data.split",
    "seed": "seed", "limit": "data.limit", "model": "model.name", "max_length": "model.max_length",
    "leakage": "data.leakage_files", "output_format": "data.output_format", "skip_bad": "data.skip_bad",
}


def prepared_dir(cfg: Config) -> Path:
    return Path(cfg.data.prepared_dir or Path(cfg.output_dir) / "data")


def main(args: argparse.Namespace) -> int:
    cfg = load_config(args, {key: getattr(args, flag) for flag, key in FLAG_KEYS.items()})
    tokenizer = None
    if cfg.model.name:
        from medtune.models.load import load_tokenizer

        tokenizer = load_tokenizer(cfg.model)
    out = Path(args.out) if args.out else prepared_dir(cfg)
    check_out_dir(out, cfg)  # before the work, not after it
    prepared = prepare(cfg, tokenizer)
    paths = write_outputs(prepared, cfg, out, tokenizer)
    print(summary(prepared.report))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _overlong_advice(report: dict) -> list[str]:
    """Say it loudly when the length policy removes a large share of the training data."""
    audit = report["length"].get("train", {})
    over, total = audit.get("exceed_max_length", 0), audit.get("examples", 0)
    if not total or over / total < 0.1:
        return []
    return [f"warning: {over} of {total} training examples are longer than model.max_length={audit['max_length']} "
            f"(p90 {audit['tokens']['p90']}, p99 {audit['tokens']['p99']} tokens): raise model.max_length "
            f"to keep them whole (data.overlong={report['length']['policy']})"]


def summary(report: dict) -> str:
    """A few human lines: what was read, kept and dropped, and the length audit."""
    c = report["counts"]
    lines = [f"format {report['detected_format']}: read {c['read']} records, {len(report['bad_lines'])} bad lines, "
             f"{c.get('duplicates_removed', 0)} duplicates removed"]
    lines.append("splits: " + ", ".join(f"{n} {k}" for n, k in c["splits"].items()))
    if "leakage" in report:
        lines.append(f"leakage: {report['leakage']['leaked_records']} training questions found in evaluation files")
    for name, a in report.get("length", {}).items():
        if isinstance(a, dict) and a.get("examples"):
            lost = a["would_lose_answer"]
            lines.append(f"{name} tokens p50 {a['tokens']['p50']} p90 {a['tokens']['p90']} p99 {a['tokens']['p99']} "
                         f"max {a['tokens']['max']}; {a['exceed_max_length']} over max_length {a['max_length']} "
                         f"(answer cut {lost['answer_cut']}, answer lost {lost['answer_lost']}, "
                         f"prompt overflow {lost['prompt_overflow']}) -> {report['length']['policy']}")
    if "kept" in c:
        test = c["splits"].get("test")
        whole = f"; test {test} kept whole (evaluation reads the question, not the length)" if test else ""
        lines.append("kept after length policy: " + ", ".join(f"{n} {k}" for n, k in c["kept"].items()) + whole)
        cut = {n: len(s) for n, s in report.get("truncated", {}).items() if s}
        if cut:
            lines.append("truncated to max_length: " + ", ".join(f"{n} {k}" for n, k in cut.items()))
        lines += _overlong_advice(report)
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines)
