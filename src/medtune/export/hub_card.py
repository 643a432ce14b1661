"""The model card a run takes to the Hub: YAML metadata the Hub reads (base_model, library_name, datasets, tags,
license, pipeline_tag), then what the repository holds (the adapter, or the merged model), the run's data,
hyperparameters and losses, its evaluation tables when the run was evaluated, intended use and limitations, and
how to load it from the repository. Nothing in it is a path of this machine: a local base model or data file is
named by its name only."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from medtune.config import Config
from medtune.data.sources import looks_like_hub_id
from medtune.models.gguf import gguf_file
from medtune.rundir import RunDir
from medtune.training.report import details

LIMITATIONS = (
    "## Intended use and limitations\n\n"
    "For research and education on medical reasoning models. Not a medical device: it can be wrong, out of date or "
    "unsafe, and must not be used for diagnosis or treatment decisions. A fine-tune on a few hundred records "
    "teaches a layout and a style far more than medical knowledge; check its evaluation above before relying on "
    "anything it writes."
)


BUILTIN_BASES = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}  # what the packaged GGUF holds


def base_model(cfg: Config) -> str | None:
    """The base model as a Hub id, else None (a folder or file of this machine means nothing on the Hub)."""
    base = BUILTIN_BASES.get(cfg.model.name, cfg.model.name)
    return base if base and looks_like_hub_id(base) and gguf_file(base) is None else None


def metadata(cfg: Config, merged: bool) -> dict:
    data = cfg.data.train_file
    meta = {"base_model": base_model(cfg),
            "library_name": "transformers" if merged else "peft",
            "datasets": [data] if data and looks_like_hub_id(data) else None,
            "tags": ["medical", "medtune", "reasoning", *([] if merged else [cfg.method])],
            "license": "other",  # the base model's licence applies: medtune cannot read it offline
            "pipeline_tag": "text-generation"}
    return {k: v for k, v in meta.items() if v is not None}


def hub_card(cfg: Config, run: RunDir, repo: str, merged: bool) -> str:
    front = yaml.safe_dump(metadata(cfg, merged), sort_keys=False, allow_unicode=True)
    kept = "the weights here come from that step" if merged else "the adapter here is that step's"
    # a trained adapter folder holds the tokenizer (and chat template) training used
    own_tokenizer = merged or (run.weights_dir(cfg.method) / "tokenizer_config.json").is_file()
    plot = ["", "![loss](plots/loss.png)"] if run.loss_plot.is_file() else []  # push uploads it when it exists
    lines = [*_intro(cfg, repo, merged), "", *details(cfg, run.info(), _named(cfg.data.train_file, "file"), kept),
             *plot, "", *_usage(cfg, repo, merged, own_tokenizer)]
    return f"---\n{front}---\n\n" + "\n".join(lines) + f"\n\n{eval_section(run)}\n{LIMITATIONS}\n"


def _intro(cfg: Config, repo: str, merged: bool) -> list[str]:
    base = _named(base_model(cfg) or cfg.model.name, "model")
    what = (f"A fine-tune of {base} for medical reasoning, made with medtune ({cfg.method}) and merged into the "
            "base's weights: a plain transformers model." if merged else
            f"A {cfg.method} adapter (PEFT) for medical reasoning on {base}, made with medtune.")
    return [f"# {repo.split('/')[1]}", "", what,
            "Educational and research use only: not a medical device, and no substitute for a clinician."]


def _named(name: str | None, kind: str) -> str:
    """A Hub id as a link; anything else by its last part, so the card shows no path of this machine."""
    if not name:
        return "not recorded"
    if looks_like_hub_id(name):
        section = "datasets/" if kind == "file" else ""
        return f"[`{name}`](https://huggingface.co/{section}{name})"
    kind = "GGUF file" if name.lower().endswith(".gguf") else kind
    return f"a local {kind}, `{Path(name).name}`"


def _usage(cfg: Config, repo: str, merged: bool, own_tokenizer: bool) -> list[str]:
    head = ["## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer"]
    if merged:
        return [*head, f'model = AutoModelForCausalLM.from_pretrained("{repo}")',
                f'tokenizer = AutoTokenizer.from_pretrained("{repo}")  # the chat template training used', "```"]
    base = base_model(cfg)
    lines = [*head, "from peft import PeftModel", "",
             f'base = AutoModelForCausalLM.from_pretrained("{base or "BASE"}")',
             f'model = PeftModel.from_pretrained(base, "{repo}")',
             f'tokenizer = AutoTokenizer.from_pretrained("{repo if own_tokenizer else base or "BASE"}")', "```"]
    if base is None:
        lines.append(f"\nBASE: the model this adapter was trained on ({_named(cfg.model.name, 'model')}).")
    return lines


def eval_section(run: RunDir) -> str:
    """The run's eval/report.md tables (medtune eval --run writes them), or a line saying there are none; the
    systems it compared are named as the rest of the card names models, never by a path of this machine."""
    report = run.eval / "report.md"
    if not report.is_file():
        return "## Evaluation\n\nNot evaluated yet (`medtune eval --run RUN ...` writes eval/report.md).\n"
    lines = [line for line in report.read_text(encoding="utf-8").splitlines()
             if not line.startswith(("![", "- **"))]  # "- **model**: `/home/...` + adapter `...`": named below
    how = lines[0].removeprefix("# ")  # "medtune eval (open-ended answers generated, seed 0)"
    systems = "\n".join(_systems(run))
    body = "\n".join(lines[1:]).strip("\n")
    return f"## Evaluation\n\n{how}:\n\n" + (f"{systems}\n\n" if systems else "") + body + "\n"


def _systems(run: RunDir) -> list[str]:
    """One line per evaluated system (results.json beside the report), e.g. '- **model**: `org/base` + this
    fine-tune'."""
    results = run.eval / "results.json"
    systems = json.loads(results.read_text(encoding="utf-8")).get("systems", {}) if results.is_file() else {}
    return [f"- **{label}**: {_named(s.get('model') or s.get('name'), 'model')}"
            + (" + this fine-tune" if s.get("adapter") else "") for label, s in systems.items()]


def public_config(text: str) -> str:
    """A run's config.yaml as the Hub repository holds it: every absolute or home path (a data file, a local base,
    the run directory) by its last part, as the card names them; a path of this machine means nothing there and may
    name its user."""

    def strip(value):
        if isinstance(value, dict):
            return {key: strip(v) for key, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        if isinstance(value, str) and (value.startswith(("/", "~")) or value[1:3] in (":\\", ":/")):
            return Path(value).name
        return value

    return yaml.safe_dump(strip(yaml.safe_load(text)), sort_keys=False, allow_unicode=True)
