"""`medtune chat`: scripted through standard input (a real subprocess), history trimming, Ctrl-C."""

import io
import subprocess
import sys

import pytest
from inference_helpers import QA

from medtune.config import DEFAULT_DISCLAIMER
from medtune.inference.chat import ChatSession
from medtune.inference.engine import Engine, SamplingParams

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def echo_dir(echo_model):
    return str(echo_model)


@pytest.fixture(scope="module")
def engine(echo_dir):
    return Engine.load(model=echo_dir)


SAID = f"\n\n{DEFAULT_DISCLAIMER}"  # the safety layer's disclaimer, once after every answer


def test_chat_scripted_through_stdin(echo_dir):
    script = "\n".join([QA[0][0], "/reasoning off", "/reset", QA[2][0], "", "/system Be brief.", "/system off",
                        "/bogus"])
    done = subprocess.run([sys.executable, "-m", "medtune.cli", "chat", "--model", echo_dir, "--engine", "transformers",
                           "--max-tokens", "40"],
                          input=script, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"Reasoning:\n{QA[0][1]}\nAnswer:\n{QA[0][2]}{SAID}\n"
        "[reasoning off]\n[conversation cleared]\n"
        f"{QA[2][2]}{SAID}\n"
        "[system prompt: Be brief.]\n"
        "[system prompt: (none)]\n"
        "[unknown command '/bogus'; commands: /reset, /system TEXT (or off), /reasoning on|off, /help, /quit "
        "(Ctrl-C stops an answer, Ctrl-D leaves)]\n"
    )  # no prompt or banner when standard input is not a terminal; the end of input leaves


@pytest.mark.parametrize("line", ["/quit", "quit", "exit", "/exit"])
def test_quit_words_leave(engine, line):
    chat, out = session(engine)
    assert chat.handle(line) is False and out.getvalue() == ""


def session(engine, **kw):
    out = io.StringIO()
    return ChatSession(engine, SamplingParams(max_tokens=40), out, **kw), out


def test_history_keeps_answers_and_is_trimmed_with_a_notice(engine):
    chat, out = session(engine)
    chat.handle(QA[0][0])
    assert [(m.role, m.content) for m in chat.history] == [("user", QA[0][0]), ("assistant", QA[0][2])]
    context = engine.context_length
    try:
        engine.context_length = len(engine.encode(engine.prompt(chat.history))) + 45
        chat.reserve = 40
        chat.handle(QA[1][0])
    finally:
        engine.context_length = context
    assert "[context full: dropped the 2 oldest messages]" in out.getvalue()
    assert chat.history[0].content == QA[1][0]


def test_ctrl_c_stops_the_answer_and_keeps_the_session(engine):
    chat, out = session(engine)

    def interrupted(delta):
        raise KeyboardInterrupt

    chat.printer.delta = interrupted  # the user presses Ctrl-C as the first token arrives
    chat.handle(QA[0][0])
    assert out.getvalue().endswith("[stopped]\n") and chat.history == []
    del chat.printer.delta
    chat.handle(QA[2][0])
    assert out.getvalue().endswith(f"Answer:\n{QA[2][2]}\n")


def test_a_question_the_engine_refuses_is_reported_and_the_session_goes_on(engine):
    chat, out = session(engine)
    context = engine.context_length
    try:
        engine.context_length = 20
        assert chat.handle(QA[0][0]) is True
    finally:
        engine.context_length = context
    assert "context window of 20 tokens" in out.getvalue()
    chat.handle(QA[2][0])
    assert out.getvalue().endswith(f"Answer:\n{QA[2][2]}\n")
