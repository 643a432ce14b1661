"""What one request to `medtune serve` may be (echo model, live server): the body's size, the prompts of one
/v1/completions call and the tokens of one prompt, each refused before any work with the limit and its flag named;
and input that parses as JSON but cannot run (a lone surrogate, a seed past 64 bits): a 400 naming the field."""

import socket
import time

import httpx
import pytest
from inference_helpers import QA
from test_server import live_server

from medtune.inference.engine import Engine
from medtune.inference.server import create_app

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
KEY = "sk-medtune-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {**AUTH, "Content-Type": "application/json"}
MB = 2**20


@pytest.fixture(scope="module")
def engine(echo_model, one_thread):
    return Engine.load(model=str(echo_model))


@pytest.fixture(scope="module")
def url(engine):
    with live_server(create_app(engine, api_key=KEY)) as address:
        yield address


def nothing_ran(url, before):
    time.sleep(0.3)
    after = httpx.get(f"{url}/health").json()
    return (after.get("finished", 0), after["running"], after["queued"]) == (before.get("finished", 0), 0, 0)


def chat_body(content: str, extra: str = "") -> bytes:
    """Raw JSON: httpx's json= cannot carry a lone surrogate, a JSON escape can."""
    messages = f'[{{"role": "user", "content": {content}}}]'
    return f'{{"model": "echo", "max_tokens": 5, "messages": {messages}{extra}}}'.encode()


@pytest.mark.parametrize("path, body, param", [
    ("/v1/chat/completions", chat_body('"hi \\ud800"'), "messages[0].content"),
    ("/v1/chat/completions", chat_body('[{"type": "text", "text": "hi \\udc00"}]'), "messages[0].content[0].text"),
    ("/v1/completions", b'{"model": "echo", "max_tokens": 5, "prompt": ["hi", "a\\udfff"]}', "prompt[1]"),
    ("/v1/completions", b'{"model": "echo", "max_tokens": 5, "prompt": "a\\udfff"}', "prompt"),
    ("/v1/chat/completions", b'{"model": "echo\\ud800", "messages": [{"role": "user", "content": "hi"}]}', "model"),
    ("/v1/chat/completions", chat_body('"hi"', ', "stop": ["\\ud800"]'), "stop[0]"),
    ("/v1/chat/completions", chat_body('"hi"', f', "temperature": 1, "seed": {2**70}'), "seed"),
    ("/v1/chat/completions", chat_body('"hi"', f', "temperature": 1, "seed": {2**64}'), "seed"),
    ("/v1/chat/completions", chat_body('"hi"', f', "temperature": 1, "seed": {-2**63 - 1}'), "seed"),
    ("/v1/completions", f'{{"model": "echo", "max_tokens": 5, "prompt": "hi", "seed": {2**70}}}'.encode(), "seed"),
])
def test_input_that_cannot_run_is_a_400_naming_the_field(url, path, body, param):
    reply = httpx.post(f"{url}{path}", content=body, headers=JSON, timeout=60)
    error = reply.json()["error"]
    assert (reply.status_code, error["param"], error["type"]) == (400, param, "invalid_request_error"), reply.text
    assert error["message"].startswith(f"{param}: "), error["message"]
    internals = ("internal", "Error", "Overflow", "TextEncodeInput", "codec", "Traceback")
    assert not any(word in error["message"] for word in internals), error["message"]
    assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_a_surrogate_sent_as_raw_utf8_bytes_is_a_400_too(url):
    body = b'{"model": "echo", "max_tokens": 5, "messages": [{"role": "user", "content": "hi \xed\xa0\x80"}]}'
    reply = httpx.post(f"{url}/v1/chat/completions", content=body, headers=JSON, timeout=60)
    assert (reply.status_code, reply.json()["error"]["param"]) == (400, "messages[0].content"), reply.text


@pytest.mark.parametrize("extra", [f', "seed": {2**63 - 1}', f', "seed": {-2**63}', ', "seed": 0'])
def test_a_seed_anywhere_in_64_bits_samples(url, extra):
    reply = httpx.post(f"{url}/v1/chat/completions", content=chat_body('"hi"', ', "temperature": 1' + extra),
                       headers=JSON, timeout=60)
    assert reply.status_code == 200, reply.text


def test_a_temperature_too_small_to_divide_by_is_greedy(url):
    question, _, answer = QA[0]
    body = {"model": "echo", "max_tokens": 40, "temperature": 1e-320,
            "messages": [{"role": "user", "content": question}]}
    reply = httpx.post(f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=60)
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == answer, reply.text


def raw_post(url: str, headers: str, timeout: float = 10) -> str:
    """The response's status line to a POST whose headers are sent and whose body is not."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                  f"{headers}\r\n".encode())
        return s.recv(4096).decode("latin-1").split("\r\n")[0]


def test_a_declared_body_over_the_cap_is_a_413_before_it_is_read(url):
    # only the headers are sent: a server that read the body first would wait for the 5 MB that never come
    status = raw_post(url, f"Content-Length: {5 * MB}\r\nAuthorization: Bearer {KEY}\r\n")
    assert status.startswith("HTTP/1.1 413"), status
    assert raw_post(url, f"Content-Length: {5 * MB}\r\n").startswith("HTTP/1.1 401")  # the key comes first


def test_a_5mb_prompt_is_a_413_sent_whole_or_in_chunks(url):
    before = httpx.get(f"{url}/health").json()
    body = b'{"model": "echo", "max_tokens": 5, "prompt": "' + b"anemia " * (5 * MB // 7) + b'"}'
    reply = httpx.post(f"{url}/v1/completions", content=body, headers=JSON, timeout=60)
    assert reply.status_code == 413, reply.text[:300]
    error = reply.json()["error"]["message"]
    assert "4 MB" in error and "--max-body-mb" in error, error

    def chunks():  # no Content-Length: the server must stop reading at the cap
        for start in range(0, len(body), 64 * 1024):
            yield body[start:start + 64 * 1024]

    reply = httpx.post(f"{url}/v1/completions", content=chunks(), headers=JSON, timeout=60)
    assert reply.status_code == 413 and "--max-body-mb" in reply.json()["error"]["message"], reply.text[:300]
    assert nothing_ran(url, before)


def test_too_many_prompts_is_a_400_naming_the_limit_and_runs_nothing(url):
    before = httpx.get(f"{url}/health").json()
    body = {"model": "echo", "max_tokens": 1, "prompt": ["anemia"] * 65}
    reply = httpx.post(f"{url}/v1/completions", json=body, headers=AUTH, timeout=120)
    error = reply.json()["error"]
    assert reply.status_code == 400 and error["param"] == "prompt", reply.text[:300]
    assert "65 prompts" in error["message"] and "64" in error["message"] and "--max-prompts" in error["message"]
    assert nothing_ran(url, before)
    body["prompt"] = ["anemia"] * 64
    assert len(httpx.post(f"{url}/v1/completions", json=body, headers=AUTH, timeout=120).json()["choices"]) == 64


def test_a_prompt_over_max_prompt_tokens_is_a_400_naming_the_limit_and_runs_nothing(engine):
    from fastapi.testclient import TestClient

    from medtune.inference.limits import RequestLimits

    long = "anemia " * 40
    with TestClient(create_app(engine, limits=RequestLimits(max_prompt_tokens=30))) as http:
        for path, body, param in [("/v1/chat/completions", {"messages": [{"role": "user", "content": long}]},
                                   "messages"),
                                  ("/v1/completions", {"prompt": ["hi", long]}, "prompt[1]")]:
            reply = http.post(path, json={"model": "echo", "max_tokens": 5, **body})
            error = reply.json()["error"]
            assert reply.status_code == 400 and error["param"] == param, reply.text
            assert "above this server's limit of 30" in error["message"] and "--max-prompt-tokens" in error["message"]
        health = http.get("/health").json()
        assert (health.get("finished", 0), health["running"], health["queued"]) == (0, 0, 0)
        reply = http.post("/v1/completions", json={"model": "echo", "max_tokens": 5, "prompt": "anemia"})
        assert reply.status_code == 200, reply.text


def test_serve_flags_set_the_limits(monkeypatch, engine):
    import uvicorn
    from fastapi.testclient import TestClient

    from medtune import cli

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    model = engine.tokenizer.name_or_path
    flags = ["--max-body-mb", "1", "--max-prompts", "2", "--max-prompt-tokens", "30"]
    assert cli.main(["serve", "--model", model, "--engine", "transformers", "--served-model-name", "echo", *flags]) == 0
    with TestClient(started["app"]) as http:
        reply = http.post("/v1/completions", json={"model": "echo", "max_tokens": 1, "prompt": ["a", "b", "c"]})
        assert reply.status_code == 400 and "limit of 2 (--max-prompts)" in reply.json()["error"]["message"]
        reply = http.post("/v1/completions", json={"model": "echo", "max_tokens": 1, "prompt": "anemia " * 40})
        assert reply.status_code == 400 and "limit of 30 (--max-prompt-tokens)" in reply.json()["error"]["message"]
        reply = http.post("/v1/completions", content=b"x" * (MB + 1), headers={"Content-Type": "application/json"})
        assert reply.status_code == 413 and "1 MB (--max-body-mb)" in reply.json()["error"]["message"]
    for bad in (["--max-prompts", "0"], ["--max-body-mb", "-1"], ["--max-prompt-tokens", "many"]):
        with pytest.raises(SystemExit):
            cli.main(["serve", "--model", model, *bad])
