"""Which weights to load for inference: a base model, base + adapter, a run directory, or a merged folder,
and the config.yaml that made them (its template and system prompt build the prompt as training did)."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from medtune import config as config_mod
from medtune.config import Config
from medtune.errors import MedtuneError, WeightsError
from medtune.rundir import ADAPTER_FILE, CONFIG_FILE, WEIGHTS_DIRS, RunDir

log = logging.getLogger(__name__)
ADAPTER_WEIGHTS = "adapter_model.safetensors"  # with ADAPTER_FILE: a whole PEFT adapter folder
MERGE_INFO = "medtune_merge.json"  # medtune merge writes it last, once its reload check passed


@dataclass
class Source:
    config: Config  # resolved config; config.model.name is what from_pretrained loads
    adapter: Path | None  # PEFT adapter folder, or None
    name: str  # short name shown to users and served as the model id


def find_config(model: str | None = None, adapter: str | None = None, run: str | None = None) -> Path | None:
    """The config.yaml beside the weights: the run's, or one in or above an adapter or merged-model folder."""
    if run:
        path = RunDir(run).config
        if not path.is_file():
            raise MedtuneError(f"{run}: no {CONFIG_FILE} here, so it is not a medtune run directory")
        return path
    for start in (adapter, model):
        if start and Path(start).is_dir():
            # adapter/, checkpoints/checkpoint-N/ and merged/ folders sit one or two levels below the run
            folder = Path(start).resolve()
            for candidate in (folder, folder.parent, folder.parent.parent):
                if (candidate / CONFIG_FILE).is_file():
                    return candidate / CONFIG_FILE
    return None


def config_beside(model: str | None = None, adapter: str | None = None, run: str | None = None) -> Config:
    """The config found beside the weights (or the defaults), with model.name set when `model` is given."""
    values = {"model.name": model} if model else {}
    return config_mod.load(find_config(model, adapter, run), values=values)


def resolve(cfg: Config, adapter: str | None = None, run: str | None = None) -> Source:
    """Point cfg.model.name at the weights to load and find the adapter (explicit, or the run's). Every verb that
    loads weights comes through here: the adapter folder and a local model folder are checked whole (their
    safetensors headers against their sizes) before transformers, PEFT or a converter opens them."""
    source = _resolve(cfg, adapter, run)
    if source.adapter is not None:
        check_adapter(source.adapter)
    check_model(source.config.model.name)
    return source


def _resolve(cfg: Config, adapter: str | None, run: str | None) -> Source:
    if run and adapter:
        raise MedtuneError("give --adapter or --run, not both (--run finds the run's adapter itself)")
    if run:
        return _from_run(cfg, Path(run))
    if adapter:
        folder = _adapter_folder(Path(adapter))
        root = next((p for p in (folder, *folder.resolve().parents[:2]) if RunDir(p).run_json.is_file()), None)
        cfg = _with_base(_base_as_trained(cfg, root) if root else cfg, folder)
        return Source(cfg, folder, _name(folder))
    if not cfg.model.name:
        raise MedtuneError("no model given: use --model (a hub id or a folder), --adapter DIR or --run DIR")
    local = Path(cfg.model.name)
    return Source(cfg, None, _name(local) if local.is_dir() else cfg.model.name)


def _from_run(cfg: Config, root: Path) -> Source:
    cfg = _base_as_trained(cfg, root)
    run = RunDir(root)
    if (run.adapter / ADAPTER_FILE).is_file():
        return Source(_with_base(cfg, run.adapter), run.adapter, root.name)
    if (run.model / "config.json").is_file():  # a full fine-tune saves a whole model
        return Source(_with_model(cfg, str(run.model)), None, root.name)
    checkpoint = _latest_checkpoint(root)
    if checkpoint is None:
        raise MedtuneError(f"{root}: no adapter/ or model/ and no checkpoint with an adapter: has training run?")
    log.warning("%s has no final adapter yet: using its latest checkpoint, %s", root, checkpoint.name)
    return Source(_with_base(cfg, checkpoint), checkpoint, f"{root.name}@{checkpoint.name}")


def _base_as_trained(cfg: Config, root: Path) -> Config:
    """A relative model.name ('./runs/tiny-llama') means what it meant where training ran (run.json's
    working_dir), so a run is usable from any folder."""
    name = cfg.model.name
    if not name or Path(name).is_absolute() or Path(name).exists():
        return cfg
    try:
        working_dir = RunDir(root).info().get("working_dir")
    except (OSError, ValueError):
        return cfg
    if working_dir and (Path(working_dir) / name).exists():
        return _with_model(cfg, str(Path(working_dir) / name))
    return cfg


def _latest_checkpoint(root: Path) -> Path | None:
    found = [path for _, path in RunDir(root).list_checkpoints() if (path / ADAPTER_FILE).is_file()]
    return found[-1] if found else None


def _adapter_folder(folder: Path) -> Path:
    if not folder.exists():
        raise MedtuneError(f"--adapter {folder}: no such folder")
    if not (folder / ADAPTER_FILE).is_file():
        hint = " (a run directory? use --run)" if (folder / CONFIG_FILE).is_file() else ""
        raise MedtuneError(f"{folder}: no {ADAPTER_FILE}, so it is not a PEFT adapter folder{hint}")
    return folder


def check_adapter(folder: Path) -> None:
    """A finished PEFT adapter folder: adapter_config.json and a whole adapter_model.safetensors (a writer killed
    between the two leaves the first alone)."""
    from medtune.models.load import check_safetensors

    if (folder / ADAPTER_WEIGHTS).is_file():
        check_safetensors(folder / ADAPTER_WEIGHTS)
    elif not (folder / "adapter_model.bin").is_file():  # an older PEFT's pickle: PEFT still reads it
        raise WeightsError(f"{folder}: {ADAPTER_FILE} but no {ADAPTER_WEIGHTS}: an adapter written only in part; "
                           "write it again")


def check_model(name: str | None) -> None:
    """A local model folder: its safetensors whole, and, when medtune merge wrote it (its config.yaml beside
    config.json), the merge's check file present. A hub id or a .gguf file is left to its loader."""
    from medtune.models.load import check_model_folder

    folder = Path(name or "").expanduser()
    if not name or not (folder / "config.json").is_file():
        return
    if (folder / CONFIG_FILE).is_file() and not (folder / MERGE_INFO).is_file():
        raise WeightsError(f"{folder}: a medtune merge folder without {MERGE_INFO}, so its merge never finished its "
                           "check: merge again into a new --out")
    check_model_folder(folder)


def _with_base(cfg: Config, adapter: Path) -> Config:
    """The base model: the config's model.name, else the one the adapter records."""
    if cfg.model.name:
        return cfg
    base = json.loads((adapter / ADAPTER_FILE).read_text()).get("base_model_name_or_path")
    if not base:
        raise MedtuneError(f"{adapter}: the adapter does not name its base model: give --model")
    return _with_model(cfg, base)


def _with_model(cfg: Config, name: str) -> Config:
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name=name))


def _name(path: Path) -> str:
    """adapter folders are usually called 'adapter': name them after their run instead."""
    parts = path.parts
    if path.name in WEIGHTS_DIRS and len(parts) > 1:
        return parts[-2]
    return path.name or str(path)


# ---------------------------------------------------------------- loading, and what the weights say


def eos_ids(model, tokenizer) -> set[int]:
    """The tokenizer's EOS and every EOS id of the model's generation config (Phi-3's <|end|>, Llama-3's eot)."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    return ids


def context_length(model, tokenizer) -> int | None:
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    limits = [n for n in limits if isinstance(n, int) and 0 < n < 10**8]  # tokenizers say 1e30 for "unknown"
    return min(limits) if limits else None


def bos_to_add(tokenizer) -> int | None:
    """BOS, when the tokenizer normally starts sequences with it (Llama, Mistral); training adds it the same way."""
    bos = tokenizer.bos_token_id
    if bos is None or tokenizer("a", add_special_tokens=True)["input_ids"][:1] != [bos]:
        return None
    return bos


def default_system_prompt(cfg: Config) -> str | None:
    """The system prompt the run trained with (data.system_prompt): a prompt training never saw would change what
    the model does; another one is the user's explicit choice (--system)."""
    return cfg.data.system_prompt or None


def trained_in_4bit(source: Source) -> bool:
    """True when these weights are the base a QLoRA run trained on (with its adapter, or alone for --compare-base):
    they load in 4-bit NF4 as they trained. A merged folder (its medtune_merge.json) holds the merged weights in
    float and loads as it is, though the run's config.yaml beside it says qlora."""
    name = Path(source.config.model.name or "").expanduser()
    return source.config.method == "qlora" and not (name / MERGE_INFO).is_file()


def load_weights(source: Source, device: str | None, merge_adapter: bool, four_bit: bool | None = None):
    """(tokenizer, model) for inference. `four_bit` None: as trained (trained_in_4bit); a QLoRA base loads in 4-bit
    NF4 with the quantization config training used, so an 8B QLoRA run evaluates on the GPU it trained on and
    inference runs the model that was trained. The adapter is merged only when that is exact (see
    _merges_exactly); otherwise it runs beside the base, unmerged."""
    from medtune.models.load import load_model, load_tokenizer

    four_bit = trained_in_4bit(source) if four_bit is None else four_bit
    tokenizer = load_tokenizer(source.config.model, padding_side="left")
    model = load_model(source.config.model, method=None, device=device, nf4=four_bit)
    if source.adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(source.adapter))
        if merge_adapter and _merges_exactly(model, four_bit):  # merged: no LoRA cost per token
            model = model.merge_and_unload()
        model.eval()
    return tokenizer, model


def _merges_exactly(model, four_bit: bool) -> bool:
    """Merging at load time only into float32 weights (the CPU path). A bf16/fp16 weight plus a small LoRA delta
    rounds most of the delta away (export/merge.py merges in float32 for this reason), and merging into 4-bit
    weights would quantize the sum again: in both cases the adapter stays unmerged, so eval and serve run the
    model that was trained."""
    import torch

    return not four_bit and model.get_base_model().dtype == torch.float32
