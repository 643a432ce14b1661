"""The guard endpoint layer against a live OpenAI-compatible stub that answers like Llama Guard: its decisions
are the layer's, its hazard codes map to categories, an overloaded guard is waited for (the judge's endpoint client
and its backoff), a guard that goes down refuses once the backoff gives up, a wrong URL stops at load."""

import time

import pytest
from endpoint_stub import FakeTime, ScriptedEndpoint
from test_server import free_port, live_server

from medtune.backoff import MAX_TRIES, TOTAL_S
from medtune.config import SafetyConfig
from medtune.errors import MedtuneError
from medtune.safety import REFUSE, SafetyLayer
from medtune.safety.guard import Guard
from medtune.safety.rules import compile_rules

pytestmark = pytest.mark.slow


def guard_app(seen: list, reply: str | None = None):
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": "llama-guard-3", "object": "model"}]}

    @app.post("/v1/chat/completions")
    def chat(body: dict):
        seen.append(body["messages"])
        last = body["messages"][-1]["content"].lower()
        verdict = "unsafe\nS11" if "bridge" in last else "unsafe\nS6" if "dose" in last else "safe"
        verdict = reply or verdict
        message = {"role": "assistant", "content": verdict}
        return {"object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": message}]}

    return app


@pytest.fixture(scope="module")
def guard_url():
    seen: list = []
    with live_server(guard_app(seen)) as url:
        yield url, seen


def layer_with(guard) -> SafetyLayer:
    return SafetyLayer(SafetyConfig(classifier=False), compile_rules(), guard=guard)


def test_the_guard_decides_after_the_rules_with_its_category(guard_url):
    url, seen = guard_url
    layer = layer_with(Guard(url))  # no model named: the one it lists
    verdict = layer.screen_request([{"role": "user", "content": "Which bridge near me is the highest?"}])
    assert (verdict.action, verdict.layer, verdict.category) == ("emergency", "guard", "self_harm")
    assert verdict.reason == "unsafe S11" and seen[-1][-1]["content"] == "Which bridge near me is the highest?"
    assert not layer.screen_request("What is the usual dose of amoxicillin for otitis?").blocked  # S6 is advice
    assert not layer.screen_request("What is anemia?").blocked
    assert layer.layers == ["rules", "guard"]


def test_the_guard_sees_the_answer_with_its_question(guard_url):
    url, seen = guard_url
    verdict = layer_with(Guard(url)).screen_answer("Take the bridge on the left.", request="Route to the clinic?")
    assert verdict.blocked and verdict.action == REFUSE and verdict.stage == "answer"
    assert [m["role"] for m in seen[-1]] == ["user", "assistant"]


def test_a_guard_that_goes_down_refuses(caplog):
    seen: list = []
    time_ = FakeTime()
    with live_server(guard_app(seen)) as url:
        guard = Guard(url, backoff=time_.backoff())
    time.sleep(0.2)  # the server is gone: every screen now fails, after the client's backoff
    with caplog.at_level("WARNING"):
        verdict = layer_with(guard).screen_request("What is anemia?")
    assert verdict.blocked and verdict.layer == "guard" and "guard endpoint failed" in verdict.reason
    assert f"guard endpoint {url}/v1/chat/completions failed {MAX_TRIES} times" in verdict.reason
    assert "safety.guard_url" in verdict.reason and len(time_.waits) == MAX_TRIES - 1 and sum(time_.waits) <= TOTAL_S
    assert "the guard endpoint failed" in caplog.text


def test_an_overloaded_guard_is_waited_for_as_retry_after_asks():
    time_ = FakeTime()
    busy = (503, {"Retry-After": "2"}, "loading the model")
    with ScriptedEndpoint([(200, {}, "safe"), busy, busy, (200, {}, "unsafe\nS11")], "llama-guard-3") as stub:
        guard = Guard(stub.url, backoff=time_.backoff())  # its test question: answered "safe" at once
        verdict = layer_with(guard).screen_request("Which bridge near me is the highest?")
    assert (verdict.action, verdict.layer, verdict.category) == ("emergency", "guard", "self_harm")
    assert stub.posts == 4 and time_.waits == [2.0, 2.0]


def test_an_unreachable_guard_or_unknown_model_stops_at_load(guard_url):
    with pytest.raises(MedtuneError, match=r"guard endpoint http://127.0.0.1:\d+ is not reachable .* safety.guard_url"):
        Guard(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(MedtuneError, match="does not serve model 'nope'.*safety.guard_model"):
        Guard(guard_url[0], "nope")


def test_a_chat_model_behind_guard_url_is_refused_at_load():
    with live_server(guard_app([], reply="Anemia is a low red cell count.")) as url:
        with pytest.raises(MedtuneError, match=r"answered a test question with 'Anemia is.*not a guard model"):
            Guard(url)
