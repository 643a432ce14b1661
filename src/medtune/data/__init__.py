"""Data: sources -> records (one internal message form) -> rendered text -> token ids with loss masks.

    sources.py     raw rows from files (.jsonl, .json, .csv, .parquet), folders or a hub id, each with its source
    folders.py     rows from a folder: a datasets save_to_disk folder, or data files laid out as on the hub
    formats.py     which record layout a dataset uses (medical_o1, alpaca, chat, sharegpt, ...), rows -> records
    records.py     the one internal form: messages, with reasoning kept apart from answers
    verifiable.py  verifiable problems (exam MCQs, open problems with a reference) for the GRPO stage
    hygiene.py     exact-duplicate removal, train/eval leakage and split-overlap checks
    split.py       seeded train / valid [/ test] splits
    safety_mix.py  refusal demonstrations (data.safety_examples) mixed into the training split
    templates.py   records -> text with the character spans of the assistant turns (the chat template)
    tokenize.py    text -> token ids and a loss mask, the overlong policy, the length audit
    pipeline.py    the whole of `medtune prepare`, also run inside `medtune train`
    outputs.py     prepare's files: train/valid/test.jsonl and prepare_report.json
    report.py      prepare's report in a few human lines
"""
