"""The repository stands alone: its files, copied into a folder with nothing beside it (no data folder next to the
clone, as a user who clones medtune has), pass the fast unit tests with their own code and data."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # a whole test lane in a child process


def repository_files() -> list[str]:
    """What a clone holds: the tracked files, and files not yet committed that git does not ignore."""
    done = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return [name for name in done.stdout.splitlines() if (REPO / name).is_file()]


def test_unit_tests_pass_in_a_copy_with_nothing_beside_it(tmp_path):
    copy = tmp_path / "alone" / "medtune"
    for name in repository_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, copy / name)
    assert sorted(p.name for p in copy.parent.iterdir()) == ["medtune"]  # nothing beside the clone
    env = {**os.environ, "PYTHONPATH": str(copy / "src")}  # the copy's own package, not this checkout's
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                           "tests/unit"], cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in summary and "skipped" not in summary, summary  # nothing skipped for want of data
    where = subprocess.run([sys.executable, "-c", "import medtune; print(medtune.__file__)"], cwd=copy, env=env,
                           capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(copy), where  # the tests above ran the copy's code
