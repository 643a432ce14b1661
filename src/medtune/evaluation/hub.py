"""Benchmarks on the Hugging Face Hub: the datasets the built-in task names mean when no data folder is given,
and loading any hub dataset as a task, failing fast (with an eval-specific hint) when the hub is out of reach.

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

from medtune.data.sources import Row, load_rows

MMLU_MEDICAL = ("anatomy", "clinical_knowledge", "college_biology", "college_medicine", "medical_genetics",
                "professional_medicine")


@dataclass(frozen=True)
class HubDataset:
    id: str
    split: str
    configs: tuple = (None,)  # loaded one after the other into one task

    def describe(self) -> str:
        configs = [c for c in self.configs if c]
        return f"{self.id}" + (f" ({', '.join(configs)})" if configs else "") + f" split {self.split}"


BUILTIN_HUB = {
    "medqa": HubDataset("GBaker/MedQA-USMLE-4-options", "test"),
    "medmcqa": HubDataset("openlifescienceai/medmcqa", "validation"),
    "pubmedqa": HubDataset("qiaojin/PubMedQA", "train", ("pqa_labeled",)),  # all 1000 PQA-L, not the 500-item test
    "mmlu_medical": HubDataset("cais/mmlu", "test", MMLU_MEDICAL),
}


def offline_hint(task: str | None = None) -> str:
    """What to do instead when the hub cannot be reached: a data folder (built-in names) or a local file."""
    folder = f"--data-dir DIR (a folder holding {task}.jsonl) or " if task else ""
    return (f"to evaluate without the hub, pass {folder}a local --task FILE (a copy downloaded where the hub is "
            "reachable: huggingface-cli download --repo-type dataset ID --local-dir DIR)")


def load_hub_rows(dataset: HubDataset, task: str | None = None) -> list[Row]:
    """Every config's rows, in order; sources name the config when there are several ("cais/mmlu/anatomy[3]")."""
    rows: list[Row] = []
    for config in dataset.configs:
        found, _ = load_rows(dataset.id, hub_config=config, hub_split=dataset.split, hub_hint=offline_hint(task))
        if len(dataset.configs) > 1:  # row indices restart per config: keep sources (and fallback ids) unique
            found = [(f"{dataset.id}/{config}[{i}]", row) for i, (_, row) in enumerate(found)]
        rows += found
    return rows
