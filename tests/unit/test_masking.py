"""The trainer takes the loss on the assistant turn only: checked token by token on the batches SFTTrainer builds,
for every template and tiny architecture, for chat templates without {% generation %} markers, for multi-turn
conversations, and with train_on_prompt."""

import json

import pytest

from fixture_data import MEDICAL_O1_SAMPLE as SAMPLE
from medtune import config as config_mod
from medtune.data.formats import convert
from medtune.data.pipeline import encode_records
from medtune.data.records import Message, Record
from medtune.data.templates import R1_INSTRUCTION, R1_PREAMBLE
from medtune.models.load import load_tokenizer
from medtune.rundir import RunDir
from medtune.training import args as args_mod
from medtune.training.examples import to_dataset
from medtune.training.trainer import build

SYSTEM = "You are a careful medical assistant."
ARCHS = ["llama", "mistral", "phi3", "qwen2"]


@pytest.fixture(scope="module")
def models(tiny_models):
    return {arch: tiny_models(arch) for arch in ARCHS}


@pytest.fixture(scope="module")
def real_record():
    row = json.loads(SAMPLE.read_text(encoding="utf-8").splitlines()[0])
    rec = convert([row], fmt="medical_o1")[0]
    # shortened so a batch stays small; the text is still the real record's
    rec.messages[-1].reasoning = rec.messages[-1].reasoning[:300]
    return rec


def trainer_for(model_dir, tmp_path, records, tokenizer=None, **values):
    cfg = config_mod.load(None, values={"model.name": str(model_dir), "output_dir": str(tmp_path / "run"),
                                        "data.system_prompt": SYSTEM, "lora.target_modules": "all-linear", **values})
    tokenizer = tokenizer or load_tokenizer(cfg.model)
    encoded = encode_records(cfg, tokenizer, records)
    plan = args_mod.plan(cfg, has_eval=False, n_train=len(encoded))
    return build(cfg, RunDir(tmp_path / "run"), {"train": to_dataset(encoded)}, tokenizer, plan).trainer, encoded


def trained_and_not(trainer, encoded):
    """Decode what the collated batch trains on and what it does not, per example; check the labels exactly."""
    rows = [trainer.train_dataset[i] for i in range(len(encoded))]
    batch = trainer.data_collator(rows)
    tok = trainer.processing_class
    out, offset = [], 0
    for i, e in enumerate(encoded):
        if "position_ids" in batch:  # padding-free: one row, sequences one after another
            ids = batch["input_ids"][0, offset: offset + e.length].tolist()
            labels = batch["labels"][0, offset: offset + e.length].tolist()
            offset += e.length
        else:
            ids, labels = batch["input_ids"][i, : e.length].tolist(), batch["labels"][i, : e.length].tolist()
        assert ids == e.input_ids
        # position 0 is never a target (nothing precedes it); every other position is trained iff masked in
        assert labels == [t if m and k > 0 else -100 for k, (t, m) in enumerate(zip(ids, e.mask))]
        out.append((tok.decode([t for t, lab in zip(ids, labels) if lab != -100]),
                    tok.decode([t for t, lab in zip(ids, labels) if lab == -100])))
    return out


def expected(template, rec):
    q, r, a = rec.question, rec.final.reasoning, rec.final.content
    if template in ("auto", "phi-think"):
        return f"<think>{r}</think>{a}<|end|></s>", f"<|system|>{SYSTEM}<|end|><|user|>{q}<|end|><|assistant|>"
    if template == "alpaca":
        return f"<think>{r}</think>{a}</s>", f"{SYSTEM}\n\n### Instruction:\n{q}\n\n### Response:\n"
    return (f"<think>{r}</think>\n\n### Answer:\n{a}</s>",
            f"{R1_PREAMBLE}\n\n### Instruction:\n{SYSTEM}\n\n### Query:\n{q}\n\n### Chain of Thought:\n")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("template", ["auto", "phi-think", "r1-cot", "alpaca"])
def test_only_the_assistant_turn_is_trained(models, real_record, tmp_path, arch, template):
    short = Record([Message("user", "Why anemia?"), Message("assistant", "Low iron.", reasoning="Iron is low.")])
    trainer, encoded = trainer_for(models[arch], tmp_path, [real_record, short], **{"data.template": template})
    for rec, (trained, untrained) in zip([real_record, short], trained_and_not(trainer, encoded)):
        want_trained, want_untrained = expected(template, rec)
        assert trained == want_trained
        assert untrained == want_untrained


@pytest.mark.parametrize("packing", ["padding_free", "grouped", "none"])
def test_every_batch_layout_keeps_the_mask(models, real_record, tmp_path, packing):
    trainer, encoded = trainer_for(models["llama"], tmp_path, [real_record, real_record],
                                   **{"training.packing": packing})
    assert trainer.args.padding_free == (packing == "padding_free")
    for trained, _ in trained_and_not(trainer, encoded):
        assert trained.startswith("<think>") and trained.endswith("<|end|></s>")


def test_multi_turn_trains_every_assistant_turn_and_no_user_turn(models, tmp_path):
    rec = Record([Message("user", "First question?"), Message("assistant", "First answer."),
                  Message("user", "Second question?"), Message("assistant", "Second answer.", reasoning="Hmm.")])
    trainer, encoded = trainer_for(models["phi3"], tmp_path, [rec])
    [(trained, untrained)] = trained_and_not(trainer, encoded)
    assert trained == "First answer.<|end|><think>Hmm.</think>Second answer.<|end|></s>"
    assert "question" not in trained and "First question?" in untrained and "Second question?" in untrained


def test_train_on_prompt_trains_everything(models, real_record, tmp_path):
    trainer, encoded = trainer_for(models["mistral"], tmp_path, [real_record], **{"training.train_on_prompt": True})
    [(trained, untrained)] = trained_and_not(trainer, encoded)
    assert len(trainer.processing_class(untrained, add_special_tokens=False)["input_ids"]) == 1  # position 0 only
    assert real_record.question in trained


CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
MISTRAL = ("{{ bos_token }}{% for m in messages %}"
           "{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
           "{% elif m['role'] == 'assistant' %}{{ m['content'] + eos_token }}"
           "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")


@pytest.mark.parametrize("template, specials, want", [
    (CHATML, ["<|im_start|>", "<|im_end|>"], "<think>Iron is low.</think>Low iron.<|im_end|>\n"),
    (MISTRAL, ["[INST]", "[/INST]"], "<think>Iron is low.</think>Low iron.</s>"),
])
def test_model_chat_templates_without_generation_markers(models, tmp_path, template, specials, want):
    """Qwen2 (ChatML) and Mistral layouts: no {% generation %} markers, a system role refused by Mistral's."""
    tok = load_tokenizer(config_mod.ModelConfig(name=str(models["qwen2"])))
    tok.add_special_tokens({"additional_special_tokens": specials})
    tok.chat_template = template
    rec = Record([Message("user", "Why anemia?"), Message("assistant", "Low iron.", reasoning="Iron is low.")])
    trainer, encoded = trainer_for(models["qwen2"], tmp_path, [rec], tokenizer=tok)
    [(trained, untrained)] = trained_and_not(trainer, encoded)
    assert trained == want
    assert "Why anemia?" in untrained and SYSTEM in untrained


def test_r1_cot_prompt_is_the_known_recipe(models, tmp_path):
    rec = Record([Message("user", "Q?"), Message("assistant", "A.", reasoning="R.")])
    trainer, encoded = trainer_for(models["llama"], tmp_path, [rec], **{"data.template": "r1-cot",
                                                                      "data.system_prompt": None})
    [(trained, untrained)] = trained_and_not(trainer, encoded)
    prompt = f"{R1_PREAMBLE}\n\n### Instruction:\n{R1_INSTRUCTION}\n\n### Query:\nQ?\n\n### Chain of Thought:\n"
    assert untrained == prompt
    assert trained == "<think>R.</think>\n\n### Answer:\nA.</s>"
