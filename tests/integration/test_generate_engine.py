"""The engine on tiny local models: equal to model.generate, batched == one by one, adapters, stops, reasoning,
streaming, statistics, context limits."""

import copy

import pytest
import torch
from inference_helpers import QA, make_run

from medtune.data.records import Message
from medtune.errors import MedtuneError
from medtune.inference.engine import Engine, SamplingParams

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def echo(echo_model):
    return Engine.load(model=str(echo_model))


@pytest.fixture(scope="module")
def random_llama(tiny_llama):
    return Engine.load(model=str(tiny_llama))


def ask(question):
    return [Message("user", question)]


def test_greedy_is_deterministic_and_equal_to_model_generate(random_llama):
    engine = random_llama
    params = SamplingParams(max_tokens=24)
    first, second = (engine.generate([ask("What causes anemia?")], params)[0] for _ in range(2))
    assert first.token_ids == second.token_ids and len(first.token_ids) > 0
    ids = torch.tensor([engine.encode(first.prompt)])
    out = engine.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False)
    new = out[0, ids.shape[1]:].tolist()
    expected = new[:next((i for i, t in enumerate(new) if t in engine.eos_ids), len(new))]
    assert first.token_ids == expected


def test_batched_equals_one_by_one(echo, random_llama):
    questions = [q for q, _, _ in QA] + ["hi", "A much longer question about chest pain radiating to the left arm?"]
    params = SamplingParams(max_tokens=30)
    for engine in (echo, random_llama):
        batch = engine.generate([ask(q) for q in questions], params, batch_size=len(questions))
        single = [engine.generate([ask(q)], params)[0] for q in questions]
        assert [g.token_ids for g in batch] == [g.token_ids for g in single]
        assert batch[0].stats.batch_size == len(questions)


def test_echo_model_answers_with_reasoning_apart(echo):
    gens = echo.generate([ask(q) for q, _, _ in QA], SamplingParams(max_tokens=40))
    assert [(g.reasoning, g.answer, g.finish_reason) for g in gens] == [(r, a, "stop") for _, r, a in QA]
    assert all(g.reasoning_finished for g in gens)


def test_reasoning_opened_by_the_prompt(echo):
    """R1-style chat templates end the generation prompt with <think>: the model continues the reasoning."""
    tok = copy.deepcopy(echo.tokenizer)
    tok.chat_template = tok.chat_template.replace("'<|assistant|>' }}{% else %}", "'<|assistant|><think>' }}{% else %}")
    engine = Engine(echo.model, tok, system_prompt=echo.system_prompt)
    gen = engine.generate([ask(QA[0][0])], SamplingParams(max_tokens=40))[0]
    assert gen.prompt.endswith("<think>") and not gen.text.startswith("<think>")
    assert (gen.reasoning, gen.answer, gen.reasoning_finished) == (QA[0][1], QA[0][2], True)


def test_max_tokens_inside_the_reasoning_says_so(echo):
    gen = echo.generate([ask(QA[3][0])], SamplingParams(max_tokens=3))[0]
    assert (gen.finish_reason, gen.reasoning_finished, gen.answer) == ("length", False, "")
    assert gen.stats.generated_tokens == 3


def test_extra_eos_token_and_stop_strings(echo):
    question = ask(QA[0][0])
    as_token = Engine(echo.model, echo.tokenizer, system_prompt=echo.system_prompt, extra_eos_tokens=["</think>"])
    gen = as_token.generate([question], SamplingParams(max_tokens=40))[0]
    assert (gen.reasoning, gen.reasoning_finished, gen.finish_reason) == (QA[0][1], False, "stop")
    as_text = Engine(echo.model, echo.tokenizer, system_prompt=echo.system_prompt, extra_eos_tokens=["acetyl"])
    gen = as_text.generate([question], SamplingParams(max_tokens=40))[0]
    assert (gen.answer, gen.finish_reason) == ("N-", "stop")
    per_request = echo.generate([question], SamplingParams(max_tokens=40, stop=["toxic"]))[0]
    assert (per_request.text, per_request.finish_reason) == ("<think>liver ", "stop")


def test_stream_matches_generate_and_stats(echo):
    params = SamplingParams(max_tokens=40)
    stream = echo.stream(ask(QA[1][0]), params)
    deltas = list(stream)
    gen = stream.generation
    assert "".join(d.text for d in deltas if d.kind == "reasoning") == QA[1][1]
    assert "".join(d.text for d in deltas if d.kind == "answer") == QA[1][2]
    assert gen.token_ids == echo.generate([ask(QA[1][0])], params)[0].token_ids
    s = gen.stats
    assert s.prompt_tokens == len(echo.encode(gen.prompt))
    assert s.generated_tokens == len(gen.token_ids) + 1  # the stop token counts
    assert 0 < s.first_token_s <= s.seconds and s.tokens_per_s > 0 and s.peak_memory_mb > 0


def test_leaving_a_stream_cancels_it_and_frees_the_engine(echo):
    stream = echo.stream(ask(QA[0][0]), SamplingParams(max_tokens=3000, ignore_eos=True))
    for _ in stream:
        break
    assert stream.generation.finish_reason == "cancelled"
    assert stream.generation.stats.generated_tokens < 3000
    assert echo.generate([ask(QA[2][0])], SamplingParams(max_tokens=40))[0].answer == QA[2][2]


def test_seeded_sampling_repeats(random_llama):
    params = SamplingParams(max_tokens=16, temperature=1.0, seed=7)
    first, second = (random_llama.generate([ask("anemia")], params)[0].token_ids for _ in range(2))
    other = random_llama.generate([ask("anemia")], SamplingParams(max_tokens=16, temperature=1.0, seed=8))[0]
    assert first == second != other.token_ids


def test_adapter_changes_the_output_and_run_dir_is_found(tmp_path, tiny_llama, random_llama):
    run = make_run(tiny_llama, tmp_path / "run")
    tuned = Engine.load(run=str(run))
    assert tuned.system_prompt == "You are a test assistant." and tuned.name == "run"
    base = Engine(random_llama.model, random_llama.tokenizer, system_prompt=tuned.system_prompt)
    params = SamplingParams(max_tokens=16)
    assert base.prompt(ask("anemia")) == tuned.prompt(ask("anemia"))
    tuned_ids = tuned.generate([ask("anemia")], params)[0].token_ids
    assert tuned_ids != base.generate([ask("anemia")], params)[0].token_ids
    unmerged = Engine.load(adapter=str(run / "adapter"), merge_adapter=False)  # config found above the adapter
    assert unmerged.system_prompt == tuned.system_prompt
    assert unmerged.generate([ask("anemia")], params)[0].token_ids == tuned_ids


def test_a_run_trained_without_a_system_prompt_is_asked_without_one(tmp_path, tiny_llama):
    """Inference must not add a system prompt training never saw; another one is the user's explicit choice."""
    from medtune import config as config_mod

    run = make_run(tiny_llama, tmp_path / "run")
    cfg = config_mod.load(run / "config.yaml")
    cfg.data.system_prompt = None
    cfg.save(run / "config.yaml")
    engine = Engine.load(run=str(run))
    assert engine.system_prompt is None and "<|system|>" not in engine.prompt(ask("anemia"))
    chosen = Engine.load(run=str(run), system_prompt="Answer briefly.")
    assert chosen.prompt(ask("anemia")).startswith("<|system|>Answer briefly.<|end|>")


def test_loading_errors_say_what_is_wrong(tmp_path, tiny_llama):
    with pytest.raises(MedtuneError, match="not a PEFT adapter"):
        Engine.load(model=str(tiny_llama), adapter=str(tmp_path))
    with pytest.raises(MedtuneError, match="not a medtune run directory"):
        Engine.load(run=str(tmp_path))
    with pytest.raises(MedtuneError, match="no model given"):
        Engine.load()


def test_context_window_limits(echo):
    small = Engine(echo.model, echo.tokenizer, system_prompt=None)
    small.context_length = 60
    with pytest.raises(MedtuneError, match="context window of 60"):
        small.request(ask("anemia " * 80))
    history = [Message("user", f"question {i} " * 4) if i % 2 == 0 else Message("assistant", "answer " * 4)
               for i in range(8)] + [Message("user", "last")]
    fitted, dropped = small.fit([Message("system", "sys"), *history], reserve=10)
    assert dropped > 0 and fitted[0].role == "system" and fitted[1].role == "user" and fitted[-1].content == "last"
    assert len(small.encode(small.prompt(fitted))) + 10 <= 60
    gen = small.generate([ask("short")], SamplingParams(max_tokens=500, ignore_eos=True))[0]
    assert gen.finish_reason == "length" and gen.stats.prompt_tokens + gen.stats.generated_tokens == 60


def test_merged_folder_gives_the_adapter_output_and_its_run_config(tmp_path, tiny_llama):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = make_run(tiny_llama, tmp_path / "run")
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), run / "adapter")
    merged.merge_and_unload().save_pretrained(run / "merged")
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(run / "merged")
    from_merged = Engine.load(model=str(run / "merged"))  # run/config.yaml is found one level up
    assert from_merged.system_prompt == "You are a test assistant." and from_merged.name == "merged"
    params = SamplingParams(max_tokens=16)
    expected = Engine.load(run=str(run)).generate([ask("anemia")], params)[0].token_ids
    assert from_merged.generate([ask("anemia")], params)[0].token_ids == expected


def test_a_run_with_a_relative_model_path_loads_from_any_folder(tmp_path, monkeypatch, tiny_llama):
    import json
    import shutil

    from medtune.config import load

    project = tmp_path / "project"
    shutil.copytree(tiny_llama, project / "models" / "tiny")
    run = make_run(project / "models" / "tiny", project / "runs" / "r")
    cfg = load(run / "config.yaml", ["model.name=./models/tiny"])
    cfg.save(run / "config.yaml")
    (run / "run.json").write_text(json.dumps({"working_dir": str(project)}))  # as medtune train records it
    monkeypatch.chdir(tmp_path)  # not where training ran: ./models/tiny does not exist here
    for engine in (Engine.load(run=str(run)), Engine.load(adapter=str(run / "adapter"))):
        assert engine.generate([[Message("user", "hi")]], SamplingParams(max_tokens=3))[0].stats.generated_tokens


@pytest.fixture(scope="module")
def bos_llama(random_llama):
    """The tiny llama with BOS in front of every sequence, as Llama and Mistral tokenizers have it."""
    tok = copy.deepcopy(random_llama.tokenizer)
    tok.add_bos_token = True
    engine = Engine(random_llama.model, tok, system_prompt="Be careful.")
    if engine.encode("hi")[:1] != [tok.bos_token_id]:
        pytest.skip("this tokenizer backend does not honour add_bos_token")
    return engine


def test_an_empty_prompt_is_refused_before_bos_is_added(bos_llama):
    bos = bos_llama.tokenizer.bos_token_id
    assert bos_llama.encode("") == [bos]  # what the check used to see, and accept
    with pytest.raises(MedtuneError, match="the prompt is empty: give some text"):
        bos_llama.request(prompt="")
    # a chat prompt always holds template text (and here the engine's system prompt): blank turns are refused
    for blank in ([], [Message("user", "")], [Message("system", " "), Message("user", "\n\t")],
                  [{"role": "user", "content": None}]):
        with pytest.raises(MedtuneError, match="the prompt is empty: every user and system message is blank"):
            bos_llama.request(blank)
    assert bos_llama.request(prompt="hi").prompt_ids[0] == bos
    assert bos_llama.request([Message("system", "Be brief."), Message("user", "")]).prompt_ids[0] == bos
    assert bos_llama.request(ask("hi")).prompt_ids == bos_llama.encode(bos_llama.prompt(ask("hi")))
