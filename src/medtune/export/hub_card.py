"""The model card a run takes to the Hub: YAML metadata the Hub reads (base_model, library_name, datasets, tags,
license, pipeline_tag), then the run's own card (data, hyperparameters, losses), its evaluation tables when the run
was evaluated, intended use and limitations, and how to load it."""

from __future__ import annotations

import yaml

from medtune.config import Config
from medtune.data.sources import looks_like_hub_id
from medtune.models.gguf import gguf_file
from medtune.rundir import RunDir
from medtune.training.report import model_card

LIMITATIONS = (
    "## Intended use and limitations\n\n"
    "For research and education on medical reasoning models. Not a medical device: it can be wrong, out of date or "
    "unsafe, and must not be used for diagnosis or treatment decisions. A fine-tune on a few hundred records "
    "teaches a layout and a style far more than medical knowledge; check its evaluation above before relying on "
    "anything it writes."
)


BUILTIN_BASES = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}  # what the packaged GGUF holds


def metadata(cfg: Config, merged: bool) -> dict:
    base = BUILTIN_BASES.get(cfg.model.name, cfg.model.name)
    data = cfg.data.train_file
    meta = {"base_model": base if looks_like_hub_id(base) and gguf_file(base) is None else None,
            "library_name": "transformers" if merged else "peft",
            "datasets": [data] if data and looks_like_hub_id(data) else None,
            "tags": ["medical", "medtune", "reasoning", *([] if merged else [cfg.method])],
            "license": "other",  # the base model's licence applies: medtune cannot read it offline
            "pipeline_tag": "text-generation"}
    return {k: v for k, v in meta.items() if v is not None}


def hub_card(cfg: Config, run: RunDir, merged: bool) -> str:
    front = yaml.safe_dump(metadata(cfg, merged), sort_keys=False, allow_unicode=True)
    body = model_card(cfg, run.info())
    return f"---\n{front}---\n\n{body}\n{eval_section(run)}\n{LIMITATIONS}\n"


def eval_section(run: RunDir) -> str:
    """The run's eval/report.md tables (medtune eval --run writes them), or a line saying there are none."""
    report = run.eval / "report.md"
    if not report.is_file():
        return "## Evaluation\n\nNot evaluated yet (`medtune eval --run RUN ...` writes eval/report.md).\n"
    lines = [line for line in report.read_text(encoding="utf-8").splitlines() if not line.startswith("![")]
    how = lines[0].removeprefix("# ")  # "medtune eval (open-ended answers generated, seed 0)"
    return f"## Evaluation\n\n{how}:\n" + "\n".join(lines[1:]) + "\n"
