"""The command line: every listed verb has --help, errors are one line with exit code 2."""

import pytest

from medtune.cli import VERBS, main


def test_top_level_help_lists_every_verb(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(verb in out for verb in VERBS)


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: medtune {verb}") and len(out.splitlines()) > 5


def test_unknown_verb_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_config_error_is_one_line_exit_2(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("training: {learnig_rate: 1e-4}\n")
    assert main(["prepare", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"medtune prepare: error: {config}: unknown key 'training.learnig_rate'; " \
                  "did you mean 'training.learning_rate'?"
