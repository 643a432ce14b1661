"""data.safety_examples: refusal demonstrations (harmful medical requests answered safely) as training Records.

An int N samples N rows of the bundled set, spread over its categories; a path reads every row of a JSONL file in
MedSafetyBench's layout ({prompt, safe_response, category?, reasoning?}). They join the training split only, and
are rendered like every other record (same template, system prompt and <think> layout).
"""

from __future__ import annotations

import random
from collections import Counter
from importlib import resources
from itertools import chain, zip_longest
from pathlib import Path

from medtune.data import sources
from medtune.data.hygiene import normalize
from medtune.data.records import Message, Record
from medtune.errors import DataError

KEY = "data.safety_examples"
BUNDLED = Path(str(resources.files("medtune") / "assets" / "safety_exemplars.jsonl"))
PROMPT_KEYS = ("prompt", "harmful_medical_request")  # the second is MedSafetyBench's own CSV column
UNCATEGORISED = "uncategorised"

# What each category asks for, to write the reasoning of rows that bring none.
CATEGORY_TEXT = {
    "self_harm": "hurting oneself (overdose, self-injury or suicide methods)",
    "harm_to_others": "harming, poisoning or endangering another person",
    "controlled_drugs": "obtaining or misusing controlled drugs outside a prescription",
    "diy_procedures": "a risky medical procedure done without a clinician",
    "falsified_records": "falsifying medical records, prescriptions or certificates",
    "unethical_practice": "unethical medical practice",
    "misinformation": "spreading medical misinformation",
    # MedSafetyBench's categories 1-9: the AMA Principles of Medical Ethics that a request violates
    "medsafetybench-1": "care without competence, compassion or respect for a patient's dignity and rights",
    "medsafetybench-2": "dishonest or unprofessional conduct, or hiding a colleague's fraud or incompetence",
    "medsafetybench-3": "acting against the law or against patients' interests",
    "medsafetybench-4": "breaching a patient's rights, confidentiality or privacy",
    "medsafetybench-5": "ignoring or misrepresenting medical evidence, or keeping relevant information from patients",
    "medsafetybench-6": "refusing or abandoning care in a way that endangers a patient",
    "medsafetybench-7": "undermining community and public health",
    "medsafetybench-8": "putting something else ahead of the patient's welfare",
    "medsafetybench-9": "denying or restricting people's access to medical care",
}
FALLBACK_TEXT = "something unsafe"
REASONING = ("The request asks for help with {what}, which could seriously harm a patient or someone else. "
             "I should not provide it; I will decline and point to safe, professional help.")


def mix_into_train(train: list[Record], spec: int | str, seed: int,
                   bundled: Path | None = None) -> tuple[list[Record], dict]:
    """(train + the refusal demonstrations, prepare's report entry). A prompt already among the training
    questions is not added twice (training on prepare's own train.jsonl with the same config)."""
    seen = {normalize(r.question) for r in train}
    examples = load_examples(spec, seed, bundled)
    added = []
    for record in examples:
        if normalize(record.question) not in seen:
            seen.add(normalize(record.question))
            added.append(record)
    entry = {"source": "bundled" if isinstance(spec, int) else str(spec), "added": len(added),
             "categories": dict(sorted(Counter(r.meta["category"] for r in added).items()))}
    if len(added) < len(examples):
        entry["already_in_train"] = len(examples) - len(added)
    return train + added, entry


def load_examples(spec: int | str, seed: int, bundled: Path | None = None) -> list[Record]:
    """N sampled rows of the bundled set (an int), or every row of a file (a path)."""
    if isinstance(spec, int):
        return sample_bundled(spec, seed, bundled or BUNDLED)
    return read_file(spec)


def sample_bundled(n: int, seed: int, path: Path | None = None) -> list[Record]:
    """n of the bundled set's unsafe rows with a safe response, seeded, spread over the categories."""
    path = path or BUNDLED
    if not path.is_file():
        raise DataError(f"{KEY} = {n}: the bundled refusal set {path} is missing; give a JSONL file of "
                        "{prompt, safe_response} rows instead")
    rows, _ = sources.load_rows(path)
    pool = [to_record(source, row) for source, row in rows
            if row.get("label") == "unsafe" and _text(row.get("safe_response"))]
    if n > len(pool):
        raise DataError(f"{KEY} = {n}: the bundled set {path.name} has only {len(pool)} refusal demonstrations; "
                        f"ask for at most {len(pool)}, or give a JSONL file")
    return round_robin(pool, n, seed)


def round_robin(pool: list[Record], n: int, seed: int) -> list[Record]:
    """n records taken one category after another (in a seeded order), each category's rows shuffled by seed,
    so every category appears as soon as n reaches their number."""
    rng = random.Random(seed)
    groups: dict[str, list[Record]] = {}
    for record in pool:
        groups.setdefault(record.meta["category"], []).append(record)
    order = sorted(groups)
    rng.shuffle(order)
    for name in order:
        rng.shuffle(groups[name])
    rounds = zip_longest(*(groups[name] for name in order))
    return [r for r in chain.from_iterable(rounds) if r is not None][:n]


def read_file(path: str) -> list[Record]:
    """Every row of a {prompt, safe_response[, category][, reasoning]} file; relative to the working folder,
    as every data.* path."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"{KEY}: {file}: file not found (give a JSONL file of {{prompt, safe_response}} rows, "
                        "or a number of bundled examples)")
    rows, _ = sources.load_rows(file)
    return [to_record(source, row) for source, row in rows]


def to_record(source: str, row: dict) -> Record:
    """One row as [user request, assistant refusal]; the reasoning is the row's own or one written for it."""
    prompt_key = next((k for k in PROMPT_KEYS if k in row), PROMPT_KEYS[0])
    prompt, answer = _required(row, prompt_key, source), _required(row, "safe_response", source)
    category = category_name(row.get("category"))
    reasoning = row.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, str):
        raise DataError(f"{source}: field 'reasoning' should be text ({KEY} row)")
    reasoning = (reasoning or "").strip() or generated_reasoning(category)
    messages = [Message("user", prompt), Message("assistant", answer, reasoning)]
    return Record(messages, source=source, meta={"safety_example": True, "category": category})


def category_name(value) -> str:
    """A row's category as text: MedSafetyBench's numbers 1-9 become 'medsafetybench-N'."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"medsafetybench-{value}"
    return str(value).strip() if value is not None and str(value).strip() else UNCATEGORISED


def generated_reasoning(category: str) -> str:
    return REASONING.format(what=CATEGORY_TEXT.get(category, FALLBACK_TEXT))


def _required(row: dict, name: str, source: str) -> str:
    value = row.get(name)
    if value is not None and not isinstance(value, str):
        raise DataError(f"{source}: field '{name}' should be text ({KEY} row)")
    if not _text(value):
        raise DataError(f"{source}: {'empty' if name in row else 'missing'} field '{name}' ({KEY} row)")
    return value.strip()


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else ""
