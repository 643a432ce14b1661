"""prepare's files: train/valid/test.jsonl in the chosen row format (mlx-lm reads all three) and
prepare_report.json, written whole or not at all, never over the input."""

from __future__ import annotations

import json
import os
from pathlib import Path

from medtune.config import Config
from medtune.data.pipeline import SPLIT_FILES, Prepared, with_prepared_splits
from medtune.data.records import Record, assistant_text
from medtune.data.templates import TEXT_ROWS_ADVICE, render, with_system
from medtune.data.verifiable import output_columns
from medtune.errors import ConfigError, DataError
from medtune.rundir import PREPARE_REPORT, check_out_folder


def output_row(record: Record, cfg: Config, tokenizer=None) -> dict:
    """One line of a split file in the chosen output format (all three are read by mlx-lm and by medtune); a
    verifiable problem's reference columns go beside it."""
    return {**_row(record, cfg, tokenizer), **output_columns(record)}


def _row(record: Record, cfg: Config, tokenizer=None) -> dict:
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
    contents[PREPARE_REPORT] = json.dumps(prepared.report, indent=2, ensure_ascii=False) + "\n"
    check_out_dir(out_dir, cfg)
    had_report = (out_dir / PREPARE_REPORT).is_file()
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
    if cfg.data.output_format == "text" and any(r.messages for rs in prepared.splits.values() for r in rs):
        notes.append(f"output_format text: each row is one string with no prompt/answer boundary, so training on "
                     f"these files (medtune train, mlx-lm) puts the prompts in the loss; {TEXT_ROWS_ADVICE}")
    truncated = prepared.report.get("truncated", {})
    if any(truncated.values()):
        notes.append("data.overlong=truncate: the files keep each example whole; medtune train cuts the "
                     f"{sum(map(len, truncated.values()))} listed under 'truncated' to model.max_length="
                     f"{cfg.model.max_length} (mlx-lm cuts at its --max-seq-length)")


def check_out_dir(out_dir: Path, cfg: Config) -> None:
    """One line instead of a traceback when the output folder is a file or sits under one, when writing there
    would overwrite the input data, or when it holds split files of the user's own."""
    check_out_folder(out_dir, "output folder")
    clash = overwritten_input(out_dir, cfg)
    if clash:
        raise ConfigError(f"output folder {out_dir} would overwrite the input {clash}: choose another --out")
    if not (out_dir / PREPARE_REPORT).is_file():  # a rerun replaces its own set whole; a user's set is never mixed
        own = sorted(f"{name}.jsonl" for name in SPLIT_FILES if (out_dir / f"{name}.jsonl").exists())
        if own:
            raise ConfigError(f"output folder {out_dir} holds {', '.join(own)} that no medtune prepare wrote (no "
                              f"{PREPARE_REPORT}): writing new splits beside them would mix the two sets; choose "
                              "another --out")


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
