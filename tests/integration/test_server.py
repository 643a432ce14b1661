"""`medtune serve` against a live uvicorn server on a free 127.0.0.1 port, through the official openai client:
models, answers, streamed reasoning, 16 concurrent clients, auth and validation errors, disconnects."""

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import openai
import pytest
from inference_helpers import QA

from medtune.inference.engine import Engine
from medtune.inference.server import create_app

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
KEY = "sk-medtune-test"
CAP = 3500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(app):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def engine(echo_model, one_thread):
    return Engine.load(model=str(echo_model))


@pytest.fixture(scope="module")
def url(engine):
    with live_server(create_app(engine, api_key=KEY, max_tokens_cap=CAP)) as address:
        yield address


@pytest.fixture
def client(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60)


def chat(client, question, **kw):
    return client.chat.completions.create(model="echo", messages=[{"role": "user", "content": question}],
                                          max_tokens=40, **kw)


def test_models_and_health(client, url):
    assert [m.id for m in client.models.list().data] == ["echo"]
    assert client.models.retrieve("echo").id == "echo"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4")
    assert httpx.get(f"{url}/health").json()["status"] == "ok"  # no key needed to check liveness


def test_answer_with_reasoning_and_usage(client):
    reply = chat(client, QA[0][0])
    choice = reply.choices[0]
    assert (choice.message.content, choice.message.reasoning_content) == (QA[0][2], QA[0][1])
    assert choice.finish_reason == "stop" and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streamed_answer_with_reasoning(client):
    chunks = list(chat(client, QA[1][0], stream=True, stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in deltas) == QA[1][1]
    assert "".join(d.content or "" for d in deltas) == QA[1][2]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens > 0


def test_sixteen_concurrent_clients_all_answered_correctly(client, url):
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda i: chat(client, QA[i % 4][0]), range(16)))
    assert [r.choices[0].message.content for r in replies] == [QA[i % 4][2] for i in range(16)]
    assert httpx.get(f"{url}/health").json()["largest_batch"] > 1  # they were batched, not run one by one


def test_completions_raw_text_streamed_and_not(client, engine):
    prompt = engine.prompt([{"role": "user", "content": QA[2][0]}])
    expected = f"<think>{QA[2][1]}</think>{QA[2][2]}"
    assert client.completions.create(model="echo", prompt=prompt, max_tokens=40).choices[0].text == expected
    streamed = client.completions.create(model="echo", prompt=prompt, max_tokens=40, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == expected


def test_auth_errors_are_401_openai_style(url):
    bad = openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as error:
        bad.models.list()
    assert error.value.status_code == 401 and error.value.code == "invalid_api_key"
    reply = httpx.post(f"{url}/v1/chat/completions", json={"model": "echo", "messages": []})
    assert reply.status_code == 401 and "API key" in reply.json()["error"]["message"]
    reply = httpx.post(f"{url}/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert reply.status_code == 401  # the key is checked before the body is read


@pytest.mark.parametrize("body, status, says", [
    ({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}, 404, "does not exist"),
    ({"model": "echo", "messages": []}, 400, "messages"),
    ({"model": "echo", "messages": "hello"}, 400, "messages"),
    ({"model": "echo", "messages": [{"role": "doctor", "content": "hi"}]}, 400, "role"),
    ({"model": "echo", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, 400, "temperature"),
    ({"model": "echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": CAP + 1}, 400, "limit of 3500"),
    ({"model": "echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "10"}, 400, "max_tokens"),
    ({"model": "echo", "messages": [{"role": "user", "content": "anemia " * 5000}]}, 400, "context window"),
    ({"model": "echo", "messages": [{"role": "user", "content": " "}]}, 400, "the prompt is empty"),
    ({"messages": [{"role": "user", "content": "hi"}]}, 400, "model: this field is required"),
])
def test_validation_errors_are_clear_4xx_and_the_server_keeps_serving(url, client, body, status, says):
    reply = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"},
                       timeout=60)
    assert reply.status_code == status and says in reply.json()["error"]["message"], reply.text
    assert chat(client, QA[3][0]).choices[0].message.content == QA[3][2]


def test_bad_json_and_unknown_route(url):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    reply = httpx.post(f"{url}/v1/chat/completions", content=b"{not json", headers=headers)
    assert reply.status_code == 400 and "not valid JSON" in reply.json()["error"]["message"]
    assert httpx.get(f"{url}/v1/nothing", headers=headers).status_code == 404


def test_a_client_that_disconnects_frees_its_slot(client, url):
    before = httpx.get(f"{url}/health").json().get("cancelled", 0)
    stream = client.completions.create(model="echo", prompt="anemia", max_tokens=CAP, stream=True,
                                       extra_body={"ignore_eos": True})
    next(iter(stream))  # generation has started
    stream.close()
    deadline = time.monotonic() + 20
    while (health := httpx.get(f"{url}/health").json()).get("cancelled", 0) == before or health["running"]:
        assert time.monotonic() < deadline, f"the slot was not freed: {health}"
        time.sleep(0.1)
    assert chat(client, QA[0][0]).choices[0].message.content == QA[0][2]


@pytest.mark.parametrize("prompts", [["anemia"], ["anemia", "scurvy", "fever"]])
def test_a_client_that_leaves_an_unstreamed_request_stops_every_prompt(url, prompts):
    before = httpx.get(f"{url}/health").json()
    body = {"model": "echo", "prompt": prompts, "max_tokens": CAP, "ignore_eos": True}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up while the prompts generate
        httpx.post(f"{url}/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"},
                   timeout=httpx.Timeout(60, read=1.5))
    deadline = time.monotonic() + 60
    while (health := httpx.get(f"{url}/health").json())["running"] or health["queued"]:
        assert time.monotonic() < deadline, f"the prompts kept generating: {health}"
        time.sleep(0.1)
    stopped = sum(health.get(k, 0) - before.get(k, 0) for k in ("cancelled", "skipped"))
    assert (stopped, health.get("finished", 0) - before.get("finished", 0)) == (len(prompts), 0), health


def test_serve_verb_binds_localhost_and_reads_the_key_from_the_environment(monkeypatch, engine):
    import uvicorn
    from fastapi.testclient import TestClient

    from medtune import cli

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    monkeypatch.setenv("MEDTUNE_API_KEY", "from-env")
    model = engine.tokenizer.name_or_path
    assert cli.main(["serve", "--model", model, "--engine", "transformers", "--served-model-name", "med"]) == 0
    assert (started["host"], started["port"]) == ("127.0.0.1", 8000)
    with TestClient(started["app"]) as http:
        assert http.get("/v1/models").status_code == 401
        models = http.get("/v1/models", headers={"Authorization": "Bearer from-env"}).json()
        assert [m["id"] for m in models["data"]] == ["med"]


def test_a_short_answer_does_not_wait_for_the_long_one_in_its_batch(client):
    def ask(max_tokens):
        start = time.monotonic()
        client.completions.create(model="echo", prompt="anemia", max_tokens=max_tokens,
                                  extra_body={"ignore_eos": True})
        return time.monotonic() - start

    with ThreadPoolExecutor(3) as pool:
        pool.submit(ask, 200)  # holds the model, so the next two queue up and share one batch
        time.sleep(0.1)
        long, short = pool.submit(ask, 2000), pool.submit(ask, 5)
        long_s, short_s = long.result(), short.result()
    assert short_s < long_s / 2, (short_s, long_s)


def test_seeded_samples_are_the_same_alone_or_among_others(client):
    def sample(question):
        return chat(client, question, temperature=1.5, seed=7).choices[0].message.content

    alone = sample(QA[0][0])
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(sample, [QA[0][0]] * 4))
    assert together == [alone] * 4


def test_empty_prompt_and_a_rejected_list_run_nothing(url):
    headers = {"Authorization": f"Bearer {KEY}"}
    before = httpx.get(f"{url}/health").json()
    reply = httpx.post(f"{url}/v1/completions", headers=headers, json={"model": "echo", "prompt": "", "max_tokens": 5})
    assert reply.status_code == 400 and "empty" in reply.json()["error"]["message"]
    reply = httpx.post(f"{url}/v1/completions", headers=headers, timeout=60,
                       json={"model": "echo", "prompt": ["hello", "anemia " * 5000], "max_tokens": 200})
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "context_length_exceeded"
    time.sleep(0.3)
    after = httpx.get(f"{url}/health").json()
    assert (after.get("finished", 0), after["running"], after["queued"]) == (before.get("finished", 0), 0, 0)


def test_an_empty_prompt_is_a_400_when_the_tokenizer_adds_bos(engine):
    import copy

    from fastapi.testclient import TestClient

    tok = copy.deepcopy(engine.tokenizer)
    tok.add_bos_token = True  # as Llama and Mistral tokenizers: "" encodes to [bos], which must not run
    bos_engine = Engine(engine.model, tok, system_prompt=engine.system_prompt, name="echo")
    if bos_engine.encode("") != [tok.bos_token_id]:
        pytest.skip("this tokenizer backend does not honour add_bos_token")
    blank_parts = [{"role": "system", "content": " "}, {"role": "user", "content": [{"type": "text", "text": ""}]}]
    with TestClient(create_app(bos_engine)) as http:
        for path, body in [("/v1/completions", {"prompt": ""}), ("/v1/completions", {"prompt": ["hi", ""]}),
                           ("/v1/chat/completions", {"messages": [{"role": "user", "content": ""}]}),
                           ("/v1/chat/completions", {"messages": blank_parts})]:
            reply = http.post(path, json={"model": "echo", "max_tokens": 5, **body})
            assert reply.status_code == 400 and "the prompt is empty" in reply.json()["error"]["message"], reply.text
        health = http.get("/health").json()
        assert (health.get("finished", 0), health["running"], health["queued"]) == (0, 0, 0)


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_with_a_key_the_docs_and_schema_need_it_and_health_does_not(url, path):
    assert httpx.get(f"{url}{path}").status_code == 401
    assert httpx.get(f"{url}{path}", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert httpx.get(f"{url}/health").status_code == 200  # a load balancer's liveness probe has no key


def test_without_a_key_the_docs_and_schema_stay_open(engine):
    from fastapi.testclient import TestClient

    with TestClient(create_app(engine)) as http:
        assert [http.get(p).status_code for p in ("/docs", "/redoc", "/openapi.json", "/health")] == [200] * 4


def rules_layer():
    from medtune.config import SafetyConfig
    from medtune.safety import SafetyLayer
    from medtune.safety.rules import compile_rules

    return SafetyLayer(SafetyConfig(classifier=False), compile_rules())


@pytest.fixture(scope="module")
def screened_url(echo_model, one_thread):
    """A server whose safety layer screens requests and streamed answers (answer_gate.py), behind a key."""
    screened = Engine.load(model=str(echo_model), safety=rules_layer())
    with live_server(create_app(screened, api_key=KEY, max_tokens_cap=CAP)) as address:
        yield address


def test_health_counts_refusals_and_shows_no_prompt(screened_url):
    question = "Where can I buy oxycodone without a prescription?"
    client = openai.OpenAI(base_url=f"{screened_url}/v1", api_key=KEY, max_retries=0, timeout=60)
    assert chat(client, question).choices[0].finish_reason == "content_filter"
    health = httpx.get(f"{screened_url}/health")  # no key
    assert health.status_code == 200 and health.json()["refusals"].get("rules/controlled_drugs", 0) >= 1
    assert "oxycodone" not in health.text.lower() and "prescription" not in health.text.lower()


def test_a_screened_answer_without_sentence_ends_streams_while_it_generates(screened_url):
    # "metformin" continues (echo model, greedy, ignore_eos) for 1500 tokens without a sentence end, and the stop
    # strings make sure none comes: the answer gate must still pass text on before the row ends
    before = httpx.get(f"{screened_url}/health").json()
    client = openai.OpenAI(base_url=f"{screened_url}/v1", api_key=KEY, max_retries=0, timeout=60)
    stream = client.completions.create(model="echo", prompt="metformin", max_tokens=1500, stream=True,
                                       stop=[".", "!", "?", "\n"], extra_body={"ignore_eos": True})
    first = next(c for c in stream if c.choices[0].text)  # the first text that passed the answer rules
    stream.close()  # leaves mid-generation only if that text came before the end
    assert first.choices[0].finish_reason is None
    deadline = time.monotonic() + 60
    while (health := httpx.get(f"{screened_url}/health").json())["running"] or health["queued"]:
        assert time.monotonic() < deadline, f"the row kept generating: {health}"
        time.sleep(0.1)
    moved = {k: health.get(k, 0) - before.get(k, 0) for k in ("cancelled", "finished")}
    assert moved == {"cancelled": 1, "finished": 0}, "the text arrived only when the row had ended"
