"""The web page's API through gradio_client, as a script calls it: a setting outside its range is an error naming
the field and its range (Gradio's own check names no field; a value of the wrong type was a server traceback),
and a question in range is answered."""

from __future__ import annotations

import socket

import pytest

gr = pytest.importorskip("gradio")
client_module = pytest.importorskip("gradio_client")
QUESTION = "What is a normal resting heart rate?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def client(tiny_llama, one_thread):
    from medtune.inference.engine import Engine, SamplingParams
    from medtune.ui.page import ChatPage

    engine = Engine.load(model=str(tiny_llama))
    page = ChatPage([engine], SamplingParams(max_tokens=8)).build()
    port = free_port()
    page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield client_module.Client(f"http://127.0.0.1:{port}/", verbose=False), engine.context_length
    page.close()


@pytest.mark.parametrize("temperature, max_tokens, message", [
    (-1, 8, "Temperature must be 0 (greedy) or more (generation.temperature) and at most 2 (the slider's end); "
            "got -1"),
    (0.5, 0, "Max tokens must be a whole number, at least 1 (generation.max_tokens) and at most {context} (the "
             "slider's end); got 0"),
    (0.5, 10**9, "Max tokens must be a whole number, at least 1 (generation.max_tokens) and at most {context}"),
    ("x", 8, "Temperature must be 0 (greedy) or more (generation.temperature) and at most 2 (the slider's end); "
             "got 'x'"),
])
def test_a_setting_out_of_range_is_an_error_naming_the_field(client, temperature, max_tokens, message):
    api, context = client
    with pytest.raises(client_module.exceptions.AppError) as raised:
        api.predict(QUESTION, temperature, max_tokens, True, "", api_name="/respond")
    assert str(raised.value).startswith(message.format(context=context))


def test_settings_in_range_are_answered_and_the_conversation_kept(client):
    api, _ = client
    api.predict(api_name="/new_conversation")
    chat, status, box = api.predict(QUESTION, 0.0, 4, True, "", api_name="/respond")
    assert chat[0]["content"][0]["text"] == QUESTION and chat[1]["role"] == "assistant"
    assert status == "Ready." and box == ""
    chat, _, _ = api.predict("And during sleep?", 0.7, 4.0, False, "", api_name="/respond")  # the session's state
    assert [m["content"][0]["text"] for m in chat if m["role"] == "user"] == [QUESTION, "And during sleep?"]
