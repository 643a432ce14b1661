"""Raw rows from wherever the user keeps them: .jsonl/.ndjson/.json/.csv/.parquet, a folder (a datasets save_to_disk
folder, or data files laid out as on the hub: folders.py), or a hub id.

Every row comes back with its source ("file:line" or "name[index]") so later errors can point at it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from medtune import hub
from medtune.data import folders
from medtune.errors import DataError, first_line

Row = tuple[str, dict]
SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LOCAL_COPY_HINT = (
    "to use it offline, download it on a machine with hub access (huggingface-cli download --repo-type dataset "
    "ID --local-dir DIR, or datasets' save_to_disk) and point data.train_file at the .jsonl/.parquet file "
    "or that folder"
)


def load_rows(
    path_or_id: str | Path, *, hub_config: str | None = None, hub_split: str = "train", skip_bad: bool = False,
    hub_hint: str = _LOCAL_COPY_HINT,
) -> tuple[list[Row], list[dict]]:
    """(rows, bad_lines): rows as (source, dict); bad_lines as {source, error}, only filled when skip_bad.
    hub_hint: what a hub failure message tells the user to do instead (the caller knows its own flags)."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        rows, bad = folders.load_folder(path, hub_config, hub_split, skip_bad, _load_file)
    elif path.is_file():
        rows, bad = _load_file(path, skip_bad)
    elif looks_like_hub_id(str(path_or_id)):
        rows, bad = _load_hub(str(path_or_id), hub_config, hub_split, hub_hint), []
    else:
        raise DataError(f"{path}: file not found")
    if not rows:
        raise DataError(_nothing_usable(path, bad))
    return rows, bad


def looks_like_hub_id(text: str) -> bool:
    """'owner/name' with no file suffix and nothing of that name on disk."""
    return bool(_HUB_ID_RE.match(text)) and not text.lower().endswith(SUFFIXES) and not Path(text).exists()


def _nothing_usable(path: Path, bad: list[dict]) -> str:
    if not bad:
        return f"{path}: empty file (no records)"
    return f"{path}: no usable records ({len(bad)} bad lines; first: {bad[0]['error']})"


# ---------------------------------------------------------------- local files


def _load_file(path: Path, skip_bad: bool) -> tuple[list[Row], list[dict]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(path, skip_bad)
    if suffix == ".json":
        return _read_json(path, skip_bad)
    if suffix == ".csv":
        return _read_csv(path, skip_bad)
    if suffix == ".parquet":
        return _read_parquet(path), []
    raise DataError(f"{path}: unsupported file type {suffix or '(none)'}; use one of {', '.join(SUFFIXES)}")


def _read_jsonl(path: Path, skip_bad: bool) -> tuple[list[Row], list[dict]]:
    rows: list[Row] = []
    bad: list[dict] = []
    with path.open("rb") as fh:  # bytes, so a bad encoding is caught on its own line
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            source = f"{path}:{lineno}"
            try:
                rows.append((source, _parse_line(raw, source)))
            except DataError as e:
                _keep_or_raise(e, source, bad, skip_bad)
    return rows, bad


def _parse_line(raw: bytes, source: str) -> dict:
    try:
        text = raw.decode("utf-8-sig").rstrip("\r\n")  # -sig: a BOM is harmless; no newline: json's column stays
        # on this line (an error at its end would name column 1 of the next)
    except UnicodeDecodeError as e:
        raise DataError(f"{source}: not UTF-8 text (byte {e.start + 1} of the line)") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{source}: invalid JSON: {_json_problem(e)}") from None
    return _object(value, source)


def _json_problem(e: json.JSONDecodeError) -> str:
    """json's message and column; some messages already end in "at" ("Unterminated string starting at")."""
    return f"{e.msg} {'' if e.msg.endswith(' at') else 'at '}column {e.colno}"


def _object(value, source: str) -> dict:
    if not isinstance(value, dict):
        raise DataError(f"{source}: expected a JSON object, got {type(value).__name__}")
    return value


def _keep_or_raise(error: DataError, source: str, bad: list[dict], skip_bad: bool) -> None:
    if not skip_bad:
        raise error
    bad.append({"source": source, "error": str(error)})


def _decode(path: Path) -> str:
    """The whole file as text; a bad encoding names the line it sits on."""
    return decode_utf8(path.read_bytes(), str(path))


def decode_utf8(data: bytes, where: str, first_line: int = 1) -> str:
    """Bytes (a file, standard input, a line of it) as text; bytes that are not UTF-8 are one error naming where
    they came from, the line and the byte, instead of a UnicodeDecodeError traceback."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + first_line
        raise DataError(f"{where}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save it as UTF-8") from None


def _read_json(path: Path, skip_bad: bool) -> tuple[list[Row], list[dict]]:
    text = _decode(path)
    if not text.strip():
        return [], []
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # JSON lines in a .json file: read them as such
            return _read_jsonl(path, skip_bad)
        raise DataError(f"{path}:{e.lineno}: invalid JSON: {_json_problem(e)}") from None
    rows, bad = [], []
    for i, item in enumerate(_json_records(path, value)):
        source = f"{path}[{i}]"
        try:
            rows.append((source, _object(item, source)))
        except DataError as e:
            _keep_or_raise(e, source, bad, skip_bad)
    return rows, bad


def _json_records(path: Path, value) -> list:
    """A list of records, or an object wrapping exactly one list ({"data": [...]})."""
    if isinstance(value, list):
        return value
    lists = [v for v in value.values() if isinstance(v, list)] if isinstance(value, dict) else []
    if isinstance(value, dict) and len(lists) == 1:
        return lists[0]
    raise DataError(f"{path}: expected a list of records, or an object holding exactly one list of records")


def _read_csv(path: Path, skip_bad: bool) -> tuple[list[Row], list[dict]]:
    reader = csv.DictReader(io.StringIO(_decode(path), newline=""))
    rows, bad = [], []
    try:
        for row in reader:
            source = f"{path}:{_csv_row_start(reader.line_num, row)}"
            if None in row:
                error = DataError(
                    f"{source}: {len(reader.fieldnames) + len(row[None])} fields, header has {len(reader.fieldnames)}"
                )
                _keep_or_raise(error, source, bad, skip_bad)
            else:
                rows.append((source, row))
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: invalid CSV: {e}") from None
    return rows, bad


def _csv_row_start(end_line: int, row: dict) -> int:
    """The line a CSV row starts on: the reader counts to its last line, and a quoted field may span lines (blank
    lines between rows are skipped, so counting on from the previous row would be off)."""
    values = [v for k, v in row.items() if k is not None] + list(row.get(None) or [])
    return end_line - sum(v.count("\n") for v in values if isinstance(v, str))


def _read_parquet(path: Path) -> list[Row]:
    import pyarrow.parquet as pq  # lazy: pyarrow is slow to import and only parquet needs it

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several unrelated types for a damaged file
        raise DataError(f"{path}: not a readable parquet file: {e}") from None
    return [(f"{path}[{i}]", row) for i, row in enumerate(table.to_pylist())]


# ---------------------------------------------------------------- the hub (folders: data/folders.py)


def _load_hub(dataset_id: str, hub_config: str | None, hub_split: str, hint: str = _LOCAL_COPY_HINT) -> list[Row]:
    _check_hub(dataset_id, hint)
    import datasets

    try:
        ds = datasets.load_dataset(dataset_id, hub_config, split=hub_split)
    except Exception as e:  # network, missing config, bad split: all end here, with datasets' own message
        raise DataError(f"{dataset_id}: could not load from the hub: {first_line(e)}; {hint}") from None
    return [(f"{dataset_id}[{i}]", row) for i, row in enumerate(ds.to_list())]


def _check_hub(dataset_id: str, hint: str = _LOCAL_COPY_HINT) -> None:
    """One quick request first (see medtune.hub): datasets retries an unreachable hub for about half a minute."""
    found = hub.probe(dataset_id, "dataset")
    if found.state == hub.MISSING:
        raise DataError(f"{dataset_id}: file not found, and no dataset of that name on the hub")
    if found.state == hub.UNREACHABLE:
        raise DataError(
            f"{dataset_id}: file not found, and the Hugging Face Hub cannot be reached ({found.reason}); "
            f"{hint} (or set HF_HUB_OFFLINE=1 to use a copy already in the datasets cache)")
