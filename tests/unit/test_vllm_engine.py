"""--engine vllm without a GPU and without vLLM: the SamplingParams arguments and TokensPrompt built from medtune's
requests, RequestOutputs (SimpleNamespace fakes shaped like vLLM's) mapped onto Generations, and the engine run on a
fake LLM through eval's generate mode, the server, streaming and the safety layer. vLLM itself, LoRA on a real GPU
and the numbers against the default engine are checked only on a GPU machine."""

import importlib.util
import json
from types import SimpleNamespace

import pytest

from medtune import config as config_mod
from medtune.cli import main
from medtune.commands.eval import check_engine
from medtune.config import DEFAULT_DISCLAIMER, DEFAULT_REFUSAL, SafetyConfig
from medtune.data.records import Message
from medtune.errors import MedtuneError
from medtune.evaluation.tasks import MCQTask, OpenTask
from medtune.inference import vllm_engine, weights
from medtune.inference.engine import Engine, Request
from medtune.inference.params import SamplingParams
from medtune.inference.prompt_engine import ModelFacts, prompt_engine
from medtune.inference.reasoning import ANSWER, REASONING, Delta
from medtune.inference.vllm_engine import (
    VllmEngine,
    adapter_rank,
    llm_args,
    lora_id,
    lora_rank,
    require_vllm,
    shared_llm,
)
from medtune.inference.vllm_requests import first_token_s, generation, prompt_input, sampling_args
from medtune.safety import SafetyLayer
from medtune.safety.rules import compile_rules

QUESTION = [Message("user", "Which nerve supplies the deltoid?")]
LORA = SimpleNamespace(lora_name="tuned", lora_int_id=1, lora_path="runs/x/adapter")  # as vLLM's LoRARequest


@pytest.fixture(scope="module")
def source(tiny_llama):
    return weights.resolve(weights.config_beside(model=str(tiny_llama)))


def make_prompts(source, safety=None):
    """The prompt engine VllmEngine.load builds (real tokenizer, config and generation_config, no weights)."""
    return prompt_engine(source, "Be careful.", None, ["###"], safety)


@pytest.fixture
def prompts(source):
    return make_prompts(source)


def completion(text, token_ids, finish_reason="stop", stop_reason=None):
    return SimpleNamespace(text=text, token_ids=list(token_ids), finish_reason=finish_reason, stop_reason=stop_reason)


def output(prompt_ids, *outputs, metrics=None):
    return SimpleNamespace(prompt_token_ids=list(prompt_ids), outputs=list(outputs), metrics=metrics)


class FakeLLM:
    """vllm.LLM.generate's shape: one scripted reply per prompt (in order), ending on EOS; records its calls."""

    def __init__(self, tokenizer, replies):
        self.tokenizer, self.replies, self.calls = tokenizer, list(replies), []

    def generate(self, prompts, sampling_params, lora_request=None, use_tqdm=True):
        self.calls.append((prompts, sampling_params, lora_request))
        out = []
        for prompt in prompts:
            text = self.replies.pop(0)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
            out.append(output(prompt["prompt_token_ids"], completion(text, ids)))
        return out


def engine_on(prompts, replies, lora=LORA):
    return VllmEngine(FakeLLM(prompts.tokenizer, replies), prompts, make_params=dict, lora=lora)


def layer():
    return SafetyLayer(SafetyConfig(), compile_rules())


def request(prompt="<|user|>q<|assistant|>", raw=False):
    return Request(prompt, [1, 5, 9], SamplingParams(), 100, set(), [], raw=raw)


# ---------------------------------------------------------------- requests in


def test_greedy_request_becomes_tokens_and_sampling_args_with_medtune_stops(prompts):
    req = prompts.request(QUESTION, SamplingParams(max_tokens=50, stop=["</think>", "Answer:"]))
    assert prompt_input(req) == {"prompt_token_ids": prompts.encode(prompts.prompt(QUESTION))}
    assert "Be careful." in req.prompt and req.prompt.endswith("<|assistant|>")  # the run's system prompt, template
    added = prompts.tokenizer.get_added_vocab()
    assert prompts.eos_ids == {prompts.tokenizer.eos_token_id, added["<|end|>"]}  # generation_config's EOS ids too
    assert sampling_args(req, prompts.eos_ids) == {
        "n": 1, "max_tokens": 50, "temperature": 0.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0,
        "seed": None, "stop": ["Answer:", "###"], "stop_token_ids": sorted({*prompts.eos_ids, added["</think>"]}),
        "ignore_eos": False, "skip_special_tokens": True, "spaces_between_special_tokens": False,
        "include_stop_str_in_output": False}


def test_sampled_request_keeps_its_knobs_and_ignore_eos_keeps_only_explicit_stops(prompts):
    params = SamplingParams(max_tokens=20, temperature=0.7, top_p=0.9, top_k=40, repetition_penalty=1.1, seed=7,
                            stop=["</think>"], ignore_eos=True)
    args = sampling_args(prompts.request(QUESTION, params), prompts.eos_ids)
    assert {k: args[k] for k in ("temperature", "top_p", "top_k", "repetition_penalty", "seed", "ignore_eos")} == \
        {"temperature": 0.7, "top_p": 0.9, "top_k": 40, "repetition_penalty": 1.1, "seed": 7, "ignore_eos": True}
    assert args["stop_token_ids"] == [prompts.tokenizer.get_added_vocab()["</think>"]]
    params.top_k = 0  # medtune's "off"
    assert sampling_args(prompts.request(QUESTION, params), prompts.eos_ids)["top_k"] == -1


def test_max_tokens_is_capped_by_the_context_window_as_the_default_engine_caps_it(prompts):
    short = Engine(ModelFacts(SimpleNamespace(max_position_embeddings=64)), prompts.tokenizer)
    req = short.request(QUESTION, SamplingParams(max_tokens=4096))
    assert sampling_args(req, short.eos_ids)["max_tokens"] == 64 - len(req.prompt_ids)
    assert short.eos_ids == {prompts.tokenizer.eos_token_id}  # no generation_config: the tokenizer's EOS


# ---------------------------------------------------------------- results out


def test_eos_finish_splits_reasoning_and_counts_the_eos_token():
    out = output([1, 5, 9], completion("<think>Axillary nerve.</think>The answer is B", [11, 12, 13, 2]))
    gen = generation(request(), out, 0.5, 4)
    assert (gen.reasoning, gen.answer, gen.finish_reason, gen.reasoning_finished) == \
        ("Axillary nerve.", "The answer is B", "stop", True)
    assert gen.text == "<think>Axillary nerve.</think>The answer is B" and gen.token_ids == [11, 12, 13]
    assert (gen.stats.prompt_tokens, gen.stats.generated_tokens, gen.stats.seconds, gen.stats.batch_size) == \
        (3, 4, 0.5, 4)


@pytest.mark.parametrize("finish, stop_reason, medtune, ids", [
    ("stop", 7, "stop", [11, 12]),  # a stop token: left out of token_ids, as the default engine does
    ("stop", "###", "stop", [11, 12, 7]),  # a stop string: every token stays, the text is cut
    ("length", None, "length", [11, 12, 7]),
    ("abort", None, "cancelled", [11, 12, 7]),
    (None, None, "cancelled", [11, 12, 7]),
])
def test_finish_reasons_and_token_ids(finish, stop_reason, medtune, ids):
    gen = generation(request(), output([1], completion("Deltoid", [11, 12, 7], finish, stop_reason)), 1.0, 1)
    assert (gen.finish_reason, gen.token_ids, gen.stats.generated_tokens) == (medtune, ids, 3)


def test_unclosed_reasoning_an_opened_think_a_raw_prompt():
    cut = generation(request(), output([1], completion("<think>Still weighing", [11], "length")), 1.0, 1)
    assert (cut.reasoning, cut.answer, cut.reasoning_finished) == ("Still weighing", "", False)
    opened = generation(request("<|assistant|><think>\n"), output([1], completion("Recall.</think>B", [11])), 1, 1)
    assert (opened.reasoning, opened.answer) == ("Recall.", "B")
    raw = generation(request(raw=True), output([1], completion(" <think>x</think> y", [11])), 1.0, 1)
    assert (raw.reasoning, raw.answer, raw.text) == (None, " <think>x</think> y", " <think>x</think> y")


def test_header_of_r1_cot_is_dropped_and_first_token_time_is_read_when_present():
    gen = generation(request(), output([1], completion("<think>r</think>### Answer:\nB", [11])), 1.0, 1,
                     "### Answer:")
    assert gen.answer == "B"
    assert first_token_s(output([1], metrics=SimpleNamespace(arrival_time=10.0, first_token_time=10.25))) == 0.25
    assert first_token_s(output([1])) is None and gen.stats.first_token_s is None


# ---------------------------------------------------------------- the engine on a fake LLM


def test_generate_sends_every_prompt_in_one_call_with_the_adapter(prompts):
    engine = engine_on(prompts, ["<think>Axillary.</think>The answer is B", "Rest."])
    params = SamplingParams(max_tokens=30)
    gens = engine.generate([QUESTION, [Message("user", "Cold?")]], params, batch_size=1)
    [(sent, sampling, lora)] = engine.llm.calls
    reqs = [prompts.request(QUESTION, params), prompts.request([Message("user", "Cold?")], params)]
    assert sent == [prompt_input(r) for r in reqs] and lora is LORA
    assert sampling == [sampling_args(r, prompts.eos_ids) for r in reqs]
    assert [(g.reasoning, g.answer) for g in gens] == [("Axillary.", "The answer is B"), (None, "Rest.")]
    assert engine.name == prompts.name and engine.context_length == prompts.context_length


def test_safety_layer_blocks_before_vllm_screens_answers_and_streams_only_what_passed(source):
    engine = engine_on(make_prompts(source, layer()), ["<think>Axillary.</think>The answer is B",
                                 "Sure. Crush the pills and slip them into her tea so she won't notice."])
    seen, finished = [], []
    reqs = [engine.request(QUESTION), engine.request([Message("user", "where can i get oxycodone without a "
                                                                       "prescription")]),
            engine.request([Message("user", "How do I give my mother her pills?")])]
    for r in reqs:
        r.on_delta, r.on_finish = seen.append, finished.append
    ok, blocked, replaced = engine.run(reqs)
    assert len(engine.llm.calls[0][0]) == 2  # the refused request never reached the model
    assert blocked.finish_reason == "content_filter" and blocked.answer == DEFAULT_REFUSAL
    assert replaced.finish_reason == "content_filter" and replaced.answer == DEFAULT_REFUSAL
    assert ok.plain_answer == "The answer is B" and ok.disclaimer == "\n\n" + DEFAULT_DISCLAIMER
    assert not any("Crush" in d.text for d in seen)  # screened before streaming: a replaced answer is never sent
    assert seen[:1] == [Delta(ANSWER, DEFAULT_REFUSAL)] and Delta(REASONING, "Axillary.") in seen
    assert finished == [blocked, ok, replaced]


def test_stream_gets_the_whole_result_as_deltas(source):
    engine = engine_on(make_prompts(source, layer()), ["<think>Axillary.</think>The answer is B"])
    stream = engine.stream(QUESTION)
    assert list(stream) == [Delta(REASONING, "Axillary."), Delta(ANSWER, "The answer is B"),
                            Delta(ANSWER, "\n\n" + DEFAULT_DISCLAIMER)]
    assert stream.generation.finish_reason == "stop"


def test_a_request_cancelled_before_its_call_never_runs(prompts):
    engine = engine_on(prompts, ["Rest."])
    gone, here = engine.request(QUESTION), engine.request(QUESTION)
    gone.cancel.set()
    cancelled, done = engine.run([gone, here])
    assert cancelled.finish_reason == "cancelled" and cancelled.text == "" and done.answer == "Rest."
    assert len(engine.llm.calls[0][0]) == 1


def test_eval_generate_mode_scores_vllm_answers_as_it_scores_the_default_engines(prompts, tmp_path):
    from medtune.evaluation.tasks import load_task
    from medtune.evaluation.tasks.base import RunContext

    path = tmp_path / "mcq.jsonl"
    rows = [{"id": f"q{i}", "question": f"Question {i}?", "options": {"A": "x", "B": "y"}, "answer": "B"}
            for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = config_mod.load(None, values={"eval.mode": "generate", "eval.batch_size": 2})
    engine = engine_on(prompts, ["<think>y.</think>The answer is B", "The answer is A", "<think>Hmm"])
    records, _ = load_task(str(path)).run(engine, RunContext(cfg, "model"))
    assert [r.correct for r in records] == [True, False, False]
    assert [r.generated.finish_reason for r in records] == ["stop"] * 3
    assert [r.generated.format_ok for r in records] == [True, False, False]
    assert [len(call[0]) for call in engine.llm.calls] == [2, 1]  # eval.batch_size prompts per call


def test_server_answers_and_streams_through_vllm(prompts):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from medtune.inference.server import create_app

    engine = engine_on(prompts, ["<think>Axillary.</think>The answer is B", "<think>Axillary.</think>B"])
    body = {"model": engine.name, "messages": [{"role": "user", "content": QUESTION[0].content}]}
    with TestClient(create_app(engine)) as client:
        reply = client.post("/v1/chat/completions", json=body).json()
        streamed = client.post("/v1/chat/completions", json=body | {"stream": True}).text
    message = reply["choices"][0]["message"]
    assert message["content"] == "The answer is B" and message["reasoning_content"] == "Axillary."
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert '"reasoning_content": "Axillary."' in streamed and '"content": "B"' in streamed
    assert streamed.rstrip().endswith("data: [DONE]")


# ---------------------------------------------------------------- loading, without vLLM


def test_lora_ranks_round_up_to_what_vllm_accepts(tmp_path):
    assert [lora_rank(r) for r in (1, 8, 9, 16, 64, 200)] == [8, 8, 16, 16, 64, 256]
    with pytest.raises(MedtuneError, match="largest"):
        lora_rank(1024)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 16, "rank_pattern": {"q_proj": 32}}))
    assert adapter_rank(tmp_path) == 32


def test_llm_args_follow_the_config_and_the_context_window():
    cfg = config_mod.load(None, values={"model.name": "microsoft/Phi-4-mini-instruct", "model.dtype": "bfloat16"})
    assert llm_args(cfg, 4096) == {"model": "microsoft/Phi-4-mini-instruct", "revision": None,
                                   "tokenizer": "microsoft/Phi-4-mini-instruct", "trust_remote_code": False,
                                   "dtype": "bfloat16", "seed": cfg.seed, "max_model_len": 4096,
                                   "gpu_memory_utilization": 0.9}
    # the window is the longest training sequence + the longest answer asked for, not the model's whole context
    assert llm_args(cfg, 131072)["max_model_len"] == cfg.model.max_length + cfg.generation.max_tokens == 6144
    assert llm_args(cfg, 4096, four_bit=True)["quantization"] == "bitsandbytes"
    cfg.model.rope_scaling = {"type": "linear", "factor": 2.0}
    with pytest.raises(MedtuneError, match="rope_scaling"):
        llm_args(cfg, 4096)


@pytest.fixture
def no_shared_llm():
    vllm_engine._shared.clear()
    yield
    vllm_engine._shared.clear()


def test_base_and_tuned_share_one_vllm_instance(no_shared_llm, tmp_path):
    made = []
    fake = SimpleNamespace(LLM=lambda **kw: made.append(kw) or SimpleNamespace(kw=kw))
    tuned = shared_llm(fake, {"model": "m"}, 16)
    assert shared_llm(fake, {"model": "m"}, None) is tuned  # base: the same instance, no LoRA request
    assert made == [{"model": "m", "enable_lora": True, "max_lora_rank": 16}]
    assert lora_id(tmp_path / "a") == 1 and lora_id(tmp_path / "b") == 2 and lora_id(tmp_path / "a") == 1
    assert shared_llm(fake, {"model": "m"}, 64) is not tuned  # a larger adapter needs a new instance
    assert shared_llm(fake, {"model": "other"}, None).kw == {"model": "other"}


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_without_vllm_the_error_says_how_to_install_it(tiny_llama, tmp_path, capsys):
    with pytest.raises(MedtuneError, match=r"pip install 'medtune\[vllm\]' \(vLLM needs a CUDA GPU\)"):
        require_vllm()
    assert main(["serve", "--engine", "vllm", "--model", str(tiny_llama)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medtune serve: error: --engine vllm needs vLLM") and "\n" not in err
    task = tmp_path / "mcq.jsonl"
    task.write_text(json.dumps({"id": "q", "question": "Q?", "options": {"A": "x", "B": "y"}, "answer": "B"}) + "\n")
    argv = ["eval", "--engine", "vllm", "--model", str(tiny_llama), "--task", str(task), "--out", str(tmp_path)]
    assert main([*argv, "--mode", "generate"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medtune eval: error: --engine vllm needs vLLM") and "\n" not in err
    assert main(argv) == 2 and "add --mode generate" in capsys.readouterr().err  # loglik, the default


def test_eval_refuses_loglik_on_vllm_in_one_line():
    cfg = config_mod.load(None)
    mcq, open_ended = MCQTask("m", [], "here"), OpenTask("o", [], "here")
    with pytest.raises(MedtuneError, match="--mode generate"):
        check_engine("vllm", cfg, [mcq])
    check_engine("vllm", cfg, [open_ended])  # open-ended tasks generate in every mode
    check_engine("transformers", cfg, [mcq])
    cfg.eval.mode = "generate"
    check_engine("vllm", cfg, [mcq])


@pytest.mark.parametrize("verb", ["eval", "serve"])
def test_help_explains_engine(verb, capsys):
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--engine {auto,transformers,llama.cpp,vllm,mlx}" in out and "pip install 'medtune[vllm]'" in out
    assert "pip install 'medtune[mlx]'" in out


def test_default_engine_interface_is_all_there():
    """What eval, the server and streams call on an engine: VllmEngine has every one of them."""
    used = ["prompt", "encode", "fit", "request", "run", "generate", "complete", "stream", "tokenizer", "safety",
            "context_length", "system_prompt", "eos_ids", "load"]
    assert all(hasattr(VllmEngine, name) for name in used)
