"""Which linear layers LoRA adapts, worked out from the model itself rather than from a name list.

Recipes written for Llama ask for q_proj, k_proj, v_proj, o_proj. Phi-3 and Phi-4-mini fuse q, k and v into one
qkv_proj (and gate, up into gate_up_proj), so PEFT silently adapts o_proj alone. Here the names are checked against
the model: fused layers are mapped with one warning, and names that match nothing are an error.

Also here: the peft.LoraConfig built from the config's lora section (build_peft_config) and the count of trainable
parameters (trainable_summary, format_trainable).
"""

from __future__ import annotations

import logging
import re

from medtune.config import LoraConfig
from medtune.errors import ConfigError

log = logging.getLogger(__name__)

PRESETS = ("attention", "mlp", "all-linear")
# fused layer -> the separate layers it replaces
FUSED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}
_BLOCK = re.compile(r"\.(\d+)\.")  # the block index in model.layers.<i>.self_attn.q_proj


def linear_layers(model) -> list[str]:
    """Full names of every linear layer except the output head (4-bit Linear4bit subclasses nn.Linear).

    A layer PEFT has already wrapped counts once, under its own name, not as its base_layer and lora_A/B.
    """
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer

    head, names, wrapped = model.get_output_embeddings(), [], ()
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer):
            names.append(name)
            wrapped = (*wrapped, name + ".")
        elif isinstance(module, torch.nn.Linear) and module is not head and not name.startswith(wrapped):
            names.append(name)
    return names


def leaf_names(paths: list[str]) -> list[str]:
    """Distinct last components, in model order: q_proj, k_proj, ..."""
    return list(dict.fromkeys(p.rsplit(".", 1)[-1] for p in paths))


def resolve_target_modules(model, requested, num_layers: int | None = None) -> tuple[list[str], list[str]]:
    """Module names for peft.LoraConfig.target_modules, and warning lines for the user.

    `requested` is a preset (attention, mlp, all-linear) or a list of names. With num_layers=N the names are
    the full paths of the top N blocks' layers (PEFT matches a list entry exactly or as a name suffix).
    """
    paths = linear_layers(model)
    names, warnings = _names(model, paths, requested)
    if num_layers is None:
        return names, warnings
    if any("." in n for n in names):
        raise ConfigError("lora.num_layers picks blocks by layer name: give target_modules as names or a preset, "
                          "not full paths or a regular expression")
    return _top_blocks(model, paths, names, num_layers, warnings), warnings


def _names(model, paths: list[str], requested) -> tuple[list[str], list[str]]:
    if isinstance(requested, str) and requested.replace("_", "-") in PRESETS:
        return _preset(model, paths, requested.replace("_", "-")), []
    if isinstance(requested, str) and _REGEX_CHARS.search(requested):
        return _regex(model, paths, requested), []
    asked = [requested] if isinstance(requested, str) else list(requested)
    if not asked:
        raise ConfigError("lora.target_modules is empty; give names or a preset: " + ", ".join(PRESETS))
    full = [a for a in asked if "." in a]  # full module paths (model.layers.0.self_attn.q_proj), as PEFT takes
    for path in full:
        if not any(p == path or p.endswith("." + path) for p in paths):
            raise ConfigError(f"lora.target_modules: no linear layer at {path!r} in {_arch(model)} "
                              f"(e.g. {paths[0]})")
    head = _head_name(model)
    names, warnings = _map_names(model, [*leaf_names(paths), *([head] if head else [])],
                                 [a for a in asked if "." not in a])
    return [*names, *full], warnings


_REGEX_CHARS = re.compile(r"[\\^$*+?\[\]()|{}]")


def _regex(model, paths: list[str], pattern: str) -> list[str]:
    """A regular expression (PEFT's own string form): matched whole against every linear layer's path."""
    try:
        matched = [p for p in paths if re.fullmatch(pattern, p)]
    except re.error as e:
        raise ConfigError(f"lora.target_modules = {pattern!r} is not a valid regular expression ({e})") from None
    if not matched:
        raise ConfigError(f"lora.target_modules = {pattern!r} matches no linear layer of {_arch(model)} "
                          f"(paths look like {paths[0]})")
    return matched


def _head_name(model) -> str | None:
    """The output head's name (lm_head): not adapted by presets, but may be asked for by name."""
    head = model.get_output_embeddings()
    return next((n.rsplit(".", 1)[-1] for n, m in model.named_modules() if m is head and n), None)


def _preset(model, paths: list[str], preset: str) -> list[str]:
    """Presets go by the parent module: attention layers sit under *attn*, MLP layers under *mlp*."""
    if preset == "all-linear":
        return leaf_names(paths)
    keys = ("attn", "attention") if preset == "attention" else ("mlp", "feed_forward", "ffn")
    chosen = [p for p in paths if any(k in _parent(p) for k in keys)]
    if not chosen:
        raise ConfigError(f"lora.target_modules = {preset}: {_arch(model)} has no {preset} linear layers "
                          f"(its linear layers: {', '.join(leaf_names(paths))})")
    return leaf_names(chosen)


def _map_names(model, available: list[str], asked: list[str]) -> tuple[list[str], list[str]]:
    """Each asked name as is, or as the fused layer that holds it; one warning line names every mapping."""
    chosen, fused_notes = [], []
    for name in asked:
        target = name if name in available else _fused_holder(name, available)
        if target is None:
            raise ConfigError(f"lora.target_modules: no layer named {name!r} in {_arch(model)}; its linear layers "
                              f"are {', '.join(available)} (or a preset: {', '.join(PRESETS)})")
        if target != name and target not in chosen:
            fused_notes.append(f"{','.join(n.removesuffix('_proj') for n in FUSED[target])} into {target}")
        if target not in chosen:
            chosen.append(target)
    if not fused_notes:
        return chosen, []
    note = (f"{_arch(model)} fuses {' and '.join(fused_notes)}: adapting {', '.join(chosen)} "
            f"(asked for {', '.join(asked)})")
    return chosen, [note]


def _fused_holder(name: str, available: list[str]) -> str | None:
    return next((fused for fused, parts in FUSED.items() if name in parts and fused in available), None)


def _top_blocks(model, paths: list[str], names: list[str], num_layers: int, warnings: list[str]) -> list[str]:
    """Full paths of the chosen layers in the last `num_layers` blocks."""
    blocks = sorted({int(m.group(1)) for p in paths if (m := _BLOCK.search(p))})
    if num_layers < 1:
        raise ConfigError(f"lora.num_layers = {num_layers}: must be at least 1 (or null for every block)")
    if num_layers > len(blocks):
        warnings.append(f"lora.num_layers = {num_layers} but {_arch(model)} has {len(blocks)} blocks: adapting all")
    keep = set(blocks[-num_layers:])
    return [p for p in paths if p.rsplit(".", 1)[-1] in names
            and (m := _BLOCK.search(p)) and int(m.group(1)) in keep]


def _parent(path: str) -> str:
    parts = path.lower().split(".")
    return parts[-2] if len(parts) > 1 else ""


def _arch(model) -> str:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # see through a PeftModel
    return type(base).__name__.removesuffix("ForCausalLM")


def build_peft_config(lora_cfg: LoraConfig, model, quiet: bool = False):
    """peft.LoraConfig for a causal LM, with targets resolved against `model`; warnings go to the log (unless
    `quiet`: the memory plan counts the adapter on a meta model before the run resolves it again)."""
    from peft import LoraConfig as PeftLoraConfig

    names, warnings = resolve_target_modules(model, lora_cfg.target_modules, lora_cfg.num_layers)
    for line in [] if quiet else warnings:
        log.warning(line)
    alpha = int(lora_cfg.alpha) if float(lora_cfg.alpha).is_integer() else lora_cfg.alpha
    return PeftLoraConfig(r=lora_cfg.r, lora_alpha=alpha, lora_dropout=lora_cfg.dropout, target_modules=names,
                          use_rslora=lora_cfg.use_rslora, use_dora=lora_cfg.use_dora, bias="none",
                          task_type="CAUSAL_LM")


def trainable_summary(model) -> tuple[int, int, float]:
    """(trainable, total, percent) parameters; 4-bit weights count as the parameters they stand for."""
    if hasattr(model, "get_nb_trainable_parameters"):  # a PeftModel
        trainable, total = model.get_nb_trainable_parameters()
    else:
        trainable, total = model.num_parameters(only_trainable=True), model.num_parameters()
    return trainable, total, 100.0 * trainable / total if total else 0.0


def format_trainable(model) -> str:
    """One line for logs and run.json: 'trainable 1,234,567 of 3,800,000,000 parameters (0.03%)'."""
    trainable, total, pct = trainable_summary(model)
    return f"trainable {trainable:,} of {total:,} parameters ({pct:.2f}%)"
