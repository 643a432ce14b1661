"""The built-in benchmarks: one entry each, the only place a benchmark's name, hub dataset and local file are spelled.

`medtune eval --task NAME` reads <data_dir>/NAME.jsonl when a data folder is given, else the entry's hub dataset.
Its rows may be in any layout evaluation/layouts.py knows (medtune's {id, question, options, answer}, or the hub
layouts of MedQA, MedMCQA, MMLU and PubMedQA): the layout is read from the rows, so a benchmark in a known layout is
one entry here. A benchmark in a new layout also needs its row converter in layouts.py.

  medqa         GBaker/MedQA-USMLE-4-options, split test (1273 USMLE questions, 4 options)
  medmcqa       openlifescienceai/medmcqa, split validation (its test split has no public answers)
  pubmedqa      qiaojin/PubMedQA, config pqa_labeled, split train: all 1000 expert-labelled PQA-L items. This is
                not the official 500-item test split (test_ground_truth.json of the pubmedqa/pubmedqa repository)
                that a local <data_dir>/pubmedqa.jsonl may hold: the hub has no such split, so hub and local
                scores are not comparable
  mmlu_medical  cais/mmlu, split test, configs anatomy, clinical_knowledge, college_biology, college_medicine,
                medical_genetics, professional_medicine, one after the other (1089 questions)
"""

from __future__ import annotations

from dataclasses import dataclass

from medtune.evaluation.hub import HubDataset

MMLU_MEDICAL = ("anatomy", "clinical_knowledge", "college_biology", "college_medicine", "medical_genetics",
                "professional_medicine")


@dataclass(frozen=True)
class Benchmark:
    name: str  # the task name, and <data_dir>/<name>.jsonl
    hub: HubDataset  # what the name means without a data folder

    @property
    def file_name(self) -> str:
        return f"{self.name}.jsonl"


BENCHMARKS = {b.name: b for b in (
    Benchmark("medqa", HubDataset("GBaker/MedQA-USMLE-4-options", "test")),
    Benchmark("medmcqa", HubDataset("openlifescienceai/medmcqa", "validation")),
    Benchmark("pubmedqa", HubDataset("qiaojin/PubMedQA", "train", ("pqa_labeled",))),  # all 1000 PQA-L items
    Benchmark("mmlu_medical", HubDataset("cais/mmlu", "test", MMLU_MEDICAL)),
)}
BUILTIN = tuple(BENCHMARKS)
