"""Rows from a folder: a datasets.save_to_disk folder (a Dataset or a DatasetDict), or a folder of data files laid out
the way the hub lays them out (train.jsonl, data/validation-00000-of-00001.parquet, ...).

Data files are read by medtune's own readers, file by file, so an error still names its file and line and
data.skip_bad still skips; datasets only says which file belongs to which split (its own naming rules).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medtune.errors import DataError, first_line

Row = tuple[str, dict]
ReadFile = Callable[[Path, bool], tuple[list[Row], list[dict]]]  # sources' reader of one file
VALID_NAMES = ("validation", "valid", "val", "dev")  # what a folder may call its validation split


def load_folder(path: Path, hub_config: str | None, split: str, skip_bad: bool,
                read_file: ReadFile) -> tuple[list[Row], list[dict]]:
    """(rows, bad_lines) of one split of the folder; split may carry a slice, e.g. train[:500]."""
    saved = _saved(path)
    if saved is not None:
        return _saved_rows(path, saved, split), []
    configs = declared_configs(path)
    if hub_config or configs:  # configs declared in the folder's README say which file is which: datasets reads it
        return _datasets_rows(path, hub_config, split, configs), []
    files = data_files(path)
    name = split_name(split)
    if name not in files:
        raise DataError(f"{path}: no '{name}' split among its data files (splits: {', '.join(files) or 'none'})")
    from medtune.data.sources import SUFFIXES  # (sources imports this module)

    if any(not f.name.lower().endswith(SUFFIXES) for f in files[name]):  # .jsonl.gz and other files datasets reads
        return _datasets_rows(path, None, split, []), []
    rows, bad = [], []
    for file in files[name]:
        got, skipped = read_file(file, skip_bad)
        rows += got
        bad += skipped
    return _sliced(rows, split), bad


def split_names(path: Path, hub_config: str | None = None) -> list[str]:
    """The splits a folder holds ([] for anything that is not a dataset folder); those of its README's config
    where it declares configs."""
    saved = _saved(path)
    if saved is not None:
        return list(saved) if hasattr(saved, "keys") else ["train"]
    if hub_config or declared_configs(path):
        import datasets

        try:
            return list(datasets.get_dataset_split_names(str(path), hub_config))
        except Exception:  # several configs and none chosen: loading the train split says so, in one line
            return []
    try:
        return list(data_files(path))
    except DataError:
        return []


def split_name(split: str) -> str:
    """'train[:500]' -> 'train'."""
    return split.split("[", 1)[0].strip()


def data_files(path: Path) -> dict[str, list[Path]]:
    """{split: files}, by datasets' own rules for naming split files."""
    from datasets.data_files import DataFilesDict, get_data_patterns

    try:
        patterns = get_data_patterns(str(path))
        found = DataFilesDict.from_patterns(patterns, base_path=str(path))
    except Exception as e:  # EmptyDatasetError and friends: the message is what the user needs
        raise DataError(f"{path}: not a save_to_disk folder nor a folder of data files: {first_line(e)}") from None
    return {str(name): [Path(f) for f in files] for name, files in found.items()}


def _saved(path: Path):
    """The save_to_disk Dataset or DatasetDict in the folder, else None."""
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except FileNotFoundError:
        return None


def _saved_rows(path: Path, saved, split: str) -> list[Row]:
    if hasattr(saved, "keys"):  # a DatasetDict: the configured split, not always 'train'
        name = split_name(split)
        if name not in saved:
            raise DataError(f"{path}: saved DatasetDict has no '{name}' split (splits: {', '.join(saved)})")
        saved = saved[name]
    rows = [(f"{path}[{i}]", row) for i, row in enumerate(saved.to_list())]
    return _sliced(rows, split)


def declared_configs(path: Path) -> list[str]:
    """The configs a hub snapshot's README declares in its YAML header (medical-o1-reasoning-SFT: en, zh, ...)."""
    import yaml
    from huggingface_hub import metadata_load  # the Hub's own reader of a card's YAML header

    readme = path / "README.md"
    try:
        header = (metadata_load(readme) if readme.is_file() else None) or {}
    except (yaml.YAMLError, ValueError, UnicodeDecodeError):  # a README that is no dataset card: no configs
        return []
    return [str(c.get("config_name", "default")) for c in header.get("configs") or [] if isinstance(c, dict)]


def _datasets_rows(path: Path, hub_config: str | None, split: str, configs: list[str]) -> list[Row]:
    import datasets

    try:
        ds = datasets.load_dataset(str(path), hub_config, split=split)
    except Exception as e:  # datasets raises many types here; the user needs the message, not the type
        if hub_config is None and len(configs) > 1:
            raise DataError(f"{path}: its README declares several configs ({', '.join(configs)}): pick one with "
                            "data.hub_config") from None
        what = f"config {hub_config!r}" if hub_config else "it with datasets"
        raise DataError(f"{path}: could not load {what}: {first_line(e)}") from None
    return [(f"{path}[{i}]", row) for i, row in enumerate(ds.to_list())]


def _sliced(rows: list[Row], split: str) -> list[Row]:
    """Apply a slice such as [:500] or [10%:] the way datasets reads it."""
    if "[" not in split:
        return rows
    import datasets

    try:
        (part,) = datasets.ReadInstruction.from_spec(split).to_absolute({split_name(split): len(rows)})
    except (ValueError, AssertionError) as e:
        raise DataError(f"split {split!r}: {first_line(e)}") from None
    return rows[part.from_:part.to]
