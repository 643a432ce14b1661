"""Prepare 25,000 medical-o1 records (the real set's size) with the length audit: seconds and peak memory.

The records are those of --data (default: the 60 real records in tests/data) repeated with a counter written
into each question, so none is a duplicate.
Run: .venv/bin/python bench/prepare_speed.py [--records 25000] [--model DIR] [--data FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from medtune import config
from medtune.data.outputs import write_outputs
from medtune.data.pipeline import prepare
from medtune.models.load import load_tokenizer
from medtune.models.tiny import build_tiny_model

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "medical_o1_sample.jsonl"


def make_records(path: Path, n: int, sample: Path) -> None:
    rows = [json.loads(line) for line in sample.read_text().splitlines()]
    with path.open("w") as f:
        for i in range(n):
            row = dict(rows[i % len(rows)])
            row["Question"] = f"[case {i}] {row['Question']}"
            f.write(json.dumps(row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=25_000)
    parser.add_argument("--model", help="model folder for the tokenizer (default: a tiny local llama)")
    parser.add_argument("--data", type=Path, default=SAMPLE, help="medical-o1 records to repeat (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "records.jsonl"
        make_records(data, args.records, args.data)
        model = args.model or str(build_tiny_model("llama", tmp / "tiny"))
        cfg = config.load(None, values={"data.train_file": str(data), "model.name": model,
                                        "model.max_length": 2048, "data.split": "0.9,0.05,0.05"})
        start = time.perf_counter()
        tokenizer = load_tokenizer(cfg.model)
        prepared = prepare(cfg, tokenizer)
        write_outputs(prepared, cfg, tmp / "out", tokenizer)
        seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    audit = prepared.report["length"]["train"]
    print(f"records {args.records}  seconds {seconds:.1f}  peak_rss_mb {peak_mb:.0f}  "
          f"records/s {args.records / seconds:.0f}  train tokens p50 {audit['tokens']['p50']} "
          f"max {audit['tokens']['max']}  over {audit['exceed_max_length']}")


if __name__ == "__main__":
    main()
