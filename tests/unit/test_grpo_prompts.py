"""The GRPO stage's prompts (training/grpo.py): rendered as the engines render them, and tokenized by TRL (the
tokenizer's defaults, BOS where it adds one) into exactly the ids medtune's engine makes: BOS once, never twice,
and a record whose prompt would tokenize otherwise refused by name."""

import pytest

from medtune import config as config_mod
from medtune.data.formats import to_record
from medtune.errors import ConfigError, DataError
from medtune.inference.engine import Engine
from medtune.training.grpo import check_batches, eval_batch, prompt_rows

ROW = {"question": "Which vitamin prevents scurvy?", "options": {"A": "Vitamin A", "B": "Vitamin C"}, "answer": "B"}


def cfg(**values):
    return config_mod.load(None, values={"training.stage": "grpo", "data.system_prompt": "Be careful.", **values})


class Model:  # what Engine reads of a model besides its weights
    class config:
        max_position_embeddings = 4096
        eos_token_id = None
    generation_config = None


def engine(tokenizer, system="Be careful."):
    return Engine(Model(), tokenizer, system_prompt=system)


def engine_ids(tokenizer, record):
    return engine(tokenizer).prompt_ids([m for m in record.messages if m.role != "assistant"])


def test_prompt_is_the_engines_and_trl_tokenizes_it_to_the_engines_ids(tokenizer):
    record = to_record(ROW, "auto", "d.jsonl:1")
    row = prompt_rows(engine(tokenizer), [record])[0]
    assert row.ids == engine_ids(tokenizer, record)
    assert tokenizer(row.prompt)["input_ids"] == row.ids  # what GRPOTrainer's text path does
    assert row.prompt.startswith("<|system|>Be careful.") and "B. Vitamin C" in row.prompt
    assert row.to_row()["options"] == '{"A": "Vitamin A", "B": "Vitamin C"}' and row.to_row()["answer_letter"] == "B"


def test_a_tokenizer_that_adds_bos_gets_it_once(tokenizer_copy):
    tokenizer_copy.add_bos_token = True
    assert tokenizer_copy("a")["input_ids"][0] == tokenizer_copy.bos_token_id
    record = to_record(ROW, "auto", "d.jsonl:1")
    row = prompt_rows(engine(tokenizer_copy), [record])[0]
    assert row.ids[0] == tokenizer_copy.bos_token_id and row.ids[1] != tokenizer_copy.bos_token_id
    assert tokenizer_copy(row.prompt)["input_ids"] == row.ids == engine_ids(tokenizer_copy, record)


def test_a_template_that_writes_bos_is_not_given_a_second_one(tokenizer_copy):
    tokenizer_copy.add_bos_token = True
    tokenizer_copy.chat_template = "{{ bos_token }}" + tokenizer_copy.chat_template
    record = to_record(ROW, "auto", "d.jsonl:1")
    row = prompt_rows(engine(tokenizer_copy), [record])[0]
    assert not row.prompt.startswith("<s>")  # TRL's tokenizer call adds it
    ids = tokenizer_copy(row.prompt)["input_ids"]
    assert ids == row.ids and ids.count(tokenizer_copy.bos_token_id) == 1


def test_a_question_holding_a_control_token_string_is_refused_by_name(tokenizer):
    record = to_record({**ROW, "question": "What does <|end|> mean?"}, "auto", "d.jsonl:9")
    with pytest.raises(DataError, match="d.jsonl:9: the prompt's tokens as TRL makes them differ"):
        prompt_rows(engine(tokenizer), [record])


def test_groups_must_fill_a_step_and_validation_batches_hold_whole_groups():
    check_batches(cfg(**{"training.batch_size": 2, "training.gradient_accumulation_steps": 2}), processes=1)
    check_batches(cfg(**{"training.batch_size": 1, "training.gradient_accumulation_steps": 2}), processes=2)
    with pytest.raises(ConfigError, match=r"\(training.batch_size 2 x gradient_accumulation_steps 1 x 3 processes"):
        check_batches(cfg(**{"training.batch_size": 2}), processes=3)
    assert eval_batch(cfg(**{"rl.num_generations_eval": 1})) == 8
    assert eval_batch(cfg(**{"rl.num_generations": 3})) == 6
    assert eval_batch(cfg(**{"rl.num_generations": 16})) == 16
