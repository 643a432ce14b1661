"""Benchmarks on the Hugging Face Hub: a dataset (id, split, configs) loaded as a task's rows, failing fast (with an
eval-specific hint) when the hub is out of reach. Which datasets the built-in task names mean is in
tasks/benchmarks.py."""

from __future__ import annotations

from dataclasses import dataclass

from medtune.data.sources import Row, load_rows


@dataclass(frozen=True)
class HubDataset:
    id: str
    split: str
    configs: tuple = (None,)  # loaded one after the other into one task

    def describe(self) -> str:
        configs = [c for c in self.configs if c]
        return f"{self.id}" + (f" ({', '.join(configs)})" if configs else "") + f" split {self.split}"


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
