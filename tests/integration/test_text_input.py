"""Text that reaches generate and chat from a file or standard input: bytes that are not UTF-8 are one line
naming where they came from and exit 2, not a UnicodeDecodeError traceback."""

import subprocess
import sys

import pytest

from medtune.cli import main

BINARY = b"What is the dose?\n\xff\xfe\x00\x81 garbage\n"


def run_cli(*argv, stdin: bytes):
    return subprocess.run([sys.executable, "-m", "medtune.cli", *map(str, argv)], input=stdin, capture_output=True,
                          timeout=300)


def last_error_line(done) -> str:
    err = done.stderr.decode()
    assert done.returncode == 2 and "Traceback" not in err, err[-2000:]
    return err.strip().splitlines()[-1]


def test_a_binary_prompt_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "q.txt"
    path.write_bytes(BINARY)
    assert main(["generate", "--model", str(tmp_path / "unused"), "--prompt-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"medtune generate: error: {path}:2: not UTF-8 text (byte 0xff); save it as UTF-8"


def test_binary_on_standard_input_to_generate_is_one_line(tmp_path):
    done = run_cli("generate", "--model", tmp_path / "unused", stdin=BINARY)
    assert last_error_line(done) == ("medtune generate: error: standard input:2: not UTF-8 text (byte 0xff); "
                                    "save it as UTF-8")


@pytest.mark.slow  # loads a model in a child process
def test_binary_on_standard_input_to_chat_is_one_line_after_the_good_lines(tiny_llama):
    done = run_cli("chat", "--model", tiny_llama, "--engine", "transformers", "--max-tokens", "2",
                   "safety.enabled=false", stdin=BINARY)
    assert last_error_line(done).endswith("medtune chat: error: standard input:2: not UTF-8 text (byte 0xff); "
                                         "save it as UTF-8")
    assert done.stdout  # the first, valid line was answered before the bad one
