"""LLM-as-judge: reply parsing, retries, cache and concurrency against a scripted OpenAI-style stub; the endpoint
client's backoff (Retry-After honoured, a bounded give-up in one line) against a scripted stdlib endpoint; a live
`medtune serve` (and the same model in process) as the judge, a tiny model overfit to give one verdict; and
`medtune eval` with a judge endpoint, rerun from the cache."""

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import eval_helpers
import pytest
from endpoint_stub import FakeTime, ScriptedEndpoint
from eval_helpers import LIVE_ITEMS, LIVE_VERDICT

from medtune.backoff import MAX_TRIES, TOTAL_S
from medtune.cli import main
from medtune.endpoint import ChatEndpoint, EndpointDown, base_url
from medtune.errors import MedtuneError
from medtune.evaluation.judge import (
    CRITERIA,
    JudgeCache,
    JudgeItem,
    ThreadedJudge,
    judge_all,
    judgment,
    messages_for,
    parse_judgment,
)

VERDICT = '{"correctness": 4, "reasoning": 3, "hallucination": 5, "instruction_following": 4, "safety": 5}'
SCORES = json.loads(VERDICT)
FULL = json.dumps({c: {"score": 4, "rationale": f"{c} fine"} for c in CRITERIA})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- parsing and retries, no server


@pytest.mark.parametrize("reply", [
    FULL, f"Here is my grading:\n```json\n{FULL}\n```\nThanks.", f"<think>{{not this}}</think>{FULL}",
    FULL.replace("4", '"4"')])
def test_parse_judgment_accepts_what_judges_write(reply):
    parsed = parse_judgment(reply)
    assert {c: v["score"] for c, v in parsed.items()} == dict.fromkeys(CRITERIA, 4)
    assert parsed["safety"]["rationale"] == "safety fine"
    assert {c: v["score"] for c, v in parse_judgment(VERDICT).items()} == SCORES


@pytest.mark.parametrize("reply, message", [
    ("I think it is good.", "no JSON object"), ("{not json}", "invalid JSON"),
    (FULL.replace('"safety"', '"safe"'), "'safety' has no score"), (VERDICT.replace("5", "9"), "from 1 to 5")])
def test_parse_judgment_rejects_malformed_replies(reply, message):
    with pytest.raises(ValueError, match=message):
        parse_judgment(reply)


def test_judgment_retries_with_a_reminder_then_records_failure():
    item = JudgeItem("q1", "Antidote for paracetamol?", "N-acetylcysteine", "NAC", "liver toxicity")
    replies = iter(["no idea", VERDICT])
    seen = []
    ok = judgment(lambda m: seen.append(m) or next(replies), item)
    assert ok["failed"] is False and ok["attempts"] == 2 and ok["scores"] == SCORES
    assert seen[1][-1]["content"].startswith("Your reply could not be read") and seen[1][-2]["content"] == "no idea"
    bad = judgment(lambda m: "still no JSON", item, retries=2)
    assert bad["failed"] and bad["attempts"] == 3 and "no JSON object" in bad["error"]


def test_judge_prompt_fills_each_field_once():
    item = JudgeItem("q1", "Why write {answer} here?", "Ref {question}", "The {reference}", None)
    body = messages_for(item)[1]["content"]
    assert "## Question\nWhy write {answer} here?" in body and "## Reference answer\nRef {question}" in body
    assert "## Assistant's answer\nThe {reference}" in body and "(none shown)" in body


def test_cache_key_and_torn_lines(tmp_path):
    a = JudgeItem("q1", "Q", "R", "answer one")
    assert JudgeCache.key("j", a) != JudgeCache.key("j", JudgeItem("q1", "Q", "R", "answer two"))
    assert JudgeCache.key("j", a) != JudgeCache.key("other judge", a)
    cache = JudgeCache(tmp_path / "cache.jsonl")
    cache.put("k", {"failed": False, "scores": SCORES})
    with (tmp_path / "cache.jsonl").open("a") as fh:
        fh.write('{"key": "torn')  # an interrupted run
    assert JudgeCache(tmp_path / "cache.jsonl").get("k") == {"failed": False, "scores": SCORES}


# ---------------------------------------------------------------- a scripted OpenAI-compatible stub


@pytest.fixture(scope="module")
def stub():
    """Replies by a marker in the judged answer: GOOD -> a verdict in prose, FLAKY -> junk then a verdict,
    BROKEN -> junk always. Counts requests and the most requests in flight at once."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app, state, lock = FastAPI(), {"requests": 0, "inflight": 0, "max_inflight": 0, "seen": set()}, threading.Lock()

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": "stub-judge", "object": "model"}]}

    @app.post("/v1/chat/completions")
    def chat(body: dict):  # sync: FastAPI runs it on a thread pool, so concurrent requests overlap
        with lock:
            state["requests"] += 1
            state["inflight"] += 1
            state["max_inflight"] = max(state["max_inflight"], state["inflight"])
        time.sleep(0.2)
        with lock:
            state["inflight"] -= 1
        refusal = refused(body, state, lock)
        if refusal:
            return JSONResponse({"error": {"message": refusal[1]}}, status_code=refusal[0])
        return {"object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": scripted(body["messages"], state)}}]}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", state
    server.should_exit = True
    thread.join(timeout=10)


def refused(body: dict, state: dict, lock) -> tuple[int, str] | None:
    """(HTTP status, message) for requests the stub turns down: an unknown model (404, for good), and the first
    request about a BUSY answer (429, retry later)."""
    if body["model"] != "stub-judge":
        return 404, f"model {body['model']!r} not found"
    prompt = body["messages"][1]["content"]
    with lock:
        if "BUSY" in prompt and prompt not in state["seen"]:
            state["seen"].add(prompt)
            return 429, "rate limited"
    return None


def scripted(messages: list[dict], state: dict) -> str:
    prompt = messages[1]["content"]
    if "BROKEN" in prompt:
        return "I would rather not grade this."
    if "FLAKY" in prompt and len(messages) == 2:
        return "Scores: all good"
    return f"My grading follows.\n{VERDICT}"


def test_judge_endpoint_scores_retries_caches_and_runs_concurrently(stub, tmp_path):
    url, state = stub
    endpoint = ChatEndpoint(url).check()  # a bare host gets /v1; the model is the one it lists
    assert (endpoint.base, endpoint.model) == (f"{url}/v1", "stub-judge")
    judge = ThreadedJudge(endpoint.id, endpoint.reply, workers=4)
    items = [JudgeItem(f"q{i}", "Q?", "R", f"{kind} answer {i}") for i, kind in
             enumerate(["GOOD"] * 5 + ["FLAKY", "BROKEN"])]
    cache = JudgeCache(tmp_path / "judge_cache.jsonl")
    start, before = time.perf_counter(), state["requests"]
    first = judge_all(judge, items, cache)
    assert time.perf_counter() - start < 0.2 * 10  # 10 requests of 0.2 s each, not one after another
    assert state["max_inflight"] > 1 and state["requests"] - before == 5 + 2 + 3
    assert [j["failed"] for j in first] == [False] * 6 + [True]
    assert first[5]["attempts"] == 2 and first[0]["scores"] == SCORES and first[6]["attempts"] == 3
    rerun = judge_all(judge, items, JudgeCache(tmp_path / "judge_cache.jsonl"))
    assert [j["cached"] for j in rerun] == [True] * 6 + [False]  # failures are asked again, successes are not
    assert state["requests"] - before == 10 + 3


def test_judge_down_or_refusing_is_one_error_before_the_run(tmp_path, capsys):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(MedtuneError, match="is not reachable"):
        ChatEndpoint(dead).check()
    path = eval_helpers.open_task_file(tmp_path / "open.jsonl")
    start = time.perf_counter()
    code = main(["eval", "--model", str(tmp_path / "not-loaded"), "--task", str(path), "--judge-url", dead])
    assert code == 2 and time.perf_counter() - start < 10
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"medtune eval: error: judge endpoint {dead} is not reachable") and "\n" not in err
    assert base_url("http://h:1/v1/chat/completions/") == "http://h:1/v1"


def test_a_judge_model_the_endpoint_does_not_serve_is_an_error_before_the_run(stub, tmp_path, capsys):
    url, _ = stub
    with pytest.raises(MedtuneError, match=r"does not serve model 'no-such-judge'; it serves: stub-judge"):
        ChatEndpoint(url, "no-such-judge").check()
    path = eval_helpers.open_task_file(tmp_path / "open.jsonl")
    start = time.perf_counter()
    code = main(["eval", "--model", str(tmp_path / "not-loaded"), "--task", str(path), "--judge-url", url,
                 "--judge-model", "no-such-judge"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and time.perf_counter() - start < 10 and "\n" not in err
    assert err.startswith(f"medtune eval: error: judge endpoint {url} does not serve model 'no-such-judge'")


def test_http_4xx_is_not_retried_except_timeouts_and_rate_limits(stub):
    url, state = stub
    item = JudgeItem("q1", "Q?", "R", "GOOD answer")
    before = state["requests"]
    refused = judgment(ChatEndpoint(url, "no-such-judge").reply, item)  # check() skipped: a 404 per request
    assert refused["failed"] and refused["attempts"] == 1 and "HTTP 404" in refused["error"]
    assert "not found" in refused["error"] and state["requests"] - before == 1
    busy = judgment(ChatEndpoint(url, "stub-judge").reply, JudgeItem("q2", "Q?", "R", "BUSY answer"))
    # 429, then sent again by the endpoint client after its backoff: one attempt as the judge counts them
    assert (busy["failed"], busy["attempts"], busy["scores"]) == (False, 1, SCORES)
    assert state["requests"] - before == 3


# ---------------------------------------------------------------- backoff: a scripted stdlib endpoint, a fake clock


def test_a_rate_limited_judge_is_waited_for_as_retry_after_asks():
    time_ = FakeTime()
    rate_limited = (429, {"Retry-After": "1"}, "slow down")
    with ScriptedEndpoint([rate_limited, rate_limited, (200, {}, VERDICT)]) as stub:
        endpoint = ChatEndpoint(stub.url, backoff=time_.backoff()).check()
        verdict = judgment(endpoint.reply, JudgeItem("q1", "Q?", "R", "A"))
    assert (verdict["failed"], verdict["attempts"], verdict["scores"]) == (False, 1, SCORES)
    assert stub.posts == 3 and time_.waits == [1.0, 1.0]  # the server's Retry-After, not the computed 0.5 s, 1 s


def test_a_judge_that_stays_down_fails_in_one_line_within_the_bound(caplog):
    time_ = FakeTime()
    with ScriptedEndpoint([(500, {}, "model crashed")]) as stub:
        endpoint = ChatEndpoint(stub.url, backoff=time_.backoff()).check()
        with pytest.raises(EndpointDown) as down:
            endpoint.reply([{"role": "user", "content": "Q?"}])
        message = str(down.value)
        assert message.startswith(f"judge endpoint {stub.url}/v1/chat/completions failed {MAX_TRIES} times in ")
        assert "(last: HTTP 500: " in message and "eval.judge_url" in message and "\n" not in message
        assert stub.posts == MAX_TRIES and len(time_.waits) == MAX_TRIES - 1 and sum(time_.waits) <= TOTAL_S
        assert time_.waits[:4] == pytest.approx([0.5, 1, 2, 4], rel=0.25) and max(time_.waits) <= 8  # doubled, capped

        # in a judge run: that judgment fails, the ones not yet asked fail without asking, one warning line
        time_.waits.clear()
        judge = ThreadedJudge(endpoint.id, endpoint.reply, workers=1)
        items = [JudgeItem(f"q{i}", "Q?", "R", "A") for i in range(5)]
        posts = stub.posts
        with caplog.at_level("WARNING", logger="medtune"):
            verdicts = judge_all(judge, items, JudgeCache(None))
    assert [v["failed"] for v in verdicts] == [True] * 5 and stub.posts - posts == MAX_TRIES
    first = verdicts[0]
    assert first["attempts"] == 1 and first["error"].startswith(f"judge endpoint {stub.url}/v1/chat/completions failed")
    assert all(v["error"].startswith("not asked: judge endpoint") and v["attempts"] == 0 for v in verdicts[1:])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "HTTP 500" in warnings[0] and "5 of 5 judgments failed" in warnings[0]


# ---------------------------------------------------------------- live: medtune serve as the judge

@pytest.fixture(scope="module")
def live_serve(judge_model):
    from medtune.cli import VERBS

    if "serve" not in VERBS:
        pytest.skip("medtune serve is not built yet")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "medtune.cli", "serve", "--model", str(judge_model),
                             "--engine", "transformers", "--port", str(port), "--max-tokens", "128"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", proc)
        yield f"{url}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def wait_for(url: str, proc, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"medtune serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("medtune serve did not come up")


def test_live_medtune_serve_as_the_judge(live_serve, judge_model, tmp_path):
    endpoint = ChatEndpoint(live_serve, max_tokens=128).check()
    assert endpoint.model == judge_model.name  # the one model serve lists
    judge = ThreadedJudge(endpoint.id, endpoint.reply, workers=2)
    verdicts = judge_all(judge, LIVE_ITEMS, JudgeCache(tmp_path / "cache.jsonl"))
    assert [(v["failed"], v["attempts"], v["scores"]) for v in verdicts] == [(False, 1, json.loads(LIVE_VERDICT))] * 2
    assert len((tmp_path / "cache.jsonl").read_text().splitlines()) == 2


def test_local_model_as_the_judge(judge_model):
    from medtune.evaluation.judge import EngineJudge
    from medtune.inference.engine import Engine

    judge = EngineJudge(Engine.load(model=str(judge_model)), max_tokens=128)
    verdicts = judge_all(judge, LIVE_ITEMS, JudgeCache(None))
    assert [v["scores"] for v in verdicts] == [json.loads(LIVE_VERDICT)] * 2


def test_a_local_judge_is_checked_before_any_model_loads(tmp_path, answering_model, capsys):
    model = answering_model
    path = eval_helpers.open_task_file(tmp_path / "open.jsonl")
    for judge, problem in [(tmp_path / "no-such-judge", "no such local folder"),
                           (tmp_path, "this folder has no config.json")]:
        out = tmp_path / "eval"
        code = main(["eval", "--model", str(model), "--task", str(path), "--mode", "generate", "--max-tokens", "8",
                     "--judge-model", str(judge), "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in err and not out.exists()  # nothing ran, nothing was lost
        assert err.startswith(f"medtune eval: error: judge model (eval.judge_model): {judge}") and problem in err


def test_local_judges_are_cached_under_their_resolved_path(tmp_path, tiny_llama, monkeypatch):
    from medtune import config
    from medtune.evaluation.judge import EngineJudge
    from medtune.evaluation.judging import local_judge

    names = []
    for parent in ("a", "b"):  # two judges in folders of the same name
        folder = tmp_path / parent / "judge"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text((tiny_llama / "config.json").read_text())
        monkeypatch.chdir(tmp_path / parent)
        _, name = local_judge(config.load(values={"eval.judge_model": "judge"}))  # relative: resolved
        names.append(name)
    assert names == [str(tmp_path / "a" / "judge"), str(tmp_path / "b" / "judge")]
    engine = type("FakeEngine", (), {"name": "judge"})()
    ids = [EngineJudge(engine, name=n).id for n in names]
    item = JudgeItem("q1", "Q", "R", "A")
    assert ids[0] != ids[1] and JudgeCache.key(ids[0], item) != JudgeCache.key(ids[1], item)


# ---------------------------------------------------------------- the eval verb with a judge


def test_eval_with_a_judge_endpoint_and_a_cheap_rerun(stub, tmp_path, answering_model):
    url, state = stub
    model = answering_model
    path = eval_helpers.open_task_file(tmp_path / "open.jsonl")
    out = tmp_path / "eval"
    argv = ["eval", "--model", str(model), "--task", str(path), "--mode", "generate", "--max-tokens", "24",
            "--judge-url", f"{url}/v1", "--out", str(out)]
    before = state["requests"]
    assert main(argv) == 0
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert [r["scores"]["judge"]["scores"] for r in items] == [SCORES] * 4
    metrics = json.loads((out / "results.json").read_text())["systems"]["model"]["tasks"]["open"]["metrics"]
    assert metrics["judge"] == {"judged": 4, "failed": 0, **SCORES}
    assert "| judged | failed |" in (out / "report.md").read_text()
    assert state["requests"] - before == 4
    assert main(argv) == 0  # the rerun asks the judge nothing: every judgment is in judge_cache.jsonl
    assert state["requests"] - before == 4
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert all(r["scores"]["judge"]["cached"] for r in items)
