"""Output folders written whole: into a hidden `.NAME.partial` beside NAME, checked there, then renamed to NAME in
one step. A process killed midway leaves only the partial folder, never a NAME that a later command would load; the
next write to NAME removes that partial folder and says so in one line. merge, export --to mlx / --from mlx and
export --to gguf write through `writing`."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medtune.errors import MedtuneError
from medtune.rundir import fsync_tree

log = logging.getLogger(__name__)


def check_out(out: Path) -> None:
    """Refuse to write over anything: the folder must not exist, or be empty."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MedtuneError(f"--out {out} already exists and is not an empty folder: choose another --out")


def partial_of(out: Path) -> Path:
    out = _named(out)
    return out.with_name(f".{out.name}.partial")


def _named(out: Path) -> Path:
    """`.` or `..` as their folder's own name, so that the partial folder is a sibling and the rename lands."""
    return Path(os.path.abspath(out)) if out.name in ("", ".", "..") else out


@contextmanager
def writing(out: Path, what: str, keep_on: tuple[type[BaseException], ...] = ()) -> Iterator[Path]:
    """Yield an empty `.OUT.partial` folder to write and check the output in; when the block ends without an error,
    its files are flushed to disk and it is renamed to `out` (nothing there, or an empty folder). An error or Ctrl-C
    removes it, but an error of a `keep_on` type keeps it for inspection; a kill leaves it, for the next
    `writing(out, ...)` to remove. `what` names the writer in that line ("merge", "export")."""
    check_out(out)
    out = _named(out)
    partial = partial_of(out)
    if partial.exists() or partial.is_symlink():
        _remove(partial)
        log.warning("removed %s, left by an earlier %s that did not finish", partial, what)
    partial.mkdir(parents=True)
    try:
        yield partial
        fsync_tree(partial)  # the rename must never reach the disk before the files' contents
        if out.is_dir():
            out.rmdir()  # the empty folder check_out allowed
        os.rename(partial, out)
    except keep_on:
        raise
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
