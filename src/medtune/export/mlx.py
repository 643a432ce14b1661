"""LoRA adapters between PEFT and mlx-lm, both ways, by renaming and transposing (no weights change).

PEFT writes `base_model.model.model.layers.<i>.<path>.lora_A.weight` (r x in) and `lora_B.weight` (out x r) with
scale alpha / r (alpha / sqrt(r) with rsLoRA); mlx-lm's `adapters.safetensors` holds
`model.layers.<i>.<path>.lora_a` (in x r) and `lora_b` (r x out), and its `adapter_config.json` names the block
`keys` (`self_attn.q_proj`), the number of top blocks adapted, the rank, the scale and the dropout. DoRA's
magnitude vector is PEFT's `lora_magnitude_vector` and mlx-lm's `m` (both the norm of each output row of the
adapted weight, fine_tune_type "dora"), so DoRA adapters convert too. mlx-lm's model
modules carry the transformers names (Phi-3's fused `qkv_proj` and `gate_up_proj` included), so a path maps to
itself. Written by hand because neither library converts: mlx-lm's PR for PEFT adapters was closed.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from medtune.errors import MedtuneError
from medtune.export.atomic import writing
from medtune.models.load import check_safetensors
from medtune.rundir import ADAPTER_FILE

MLX_WEIGHTS, MLX_CONFIG = "adapters.safetensors", "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
_PEFT_KEY = re.compile(r"^base_model\.model\.(?P<module>model\.layers\.(?P<block>\d+)\.(?P<path>.+))"
                       r"\.(?P<part>lora_A\.weight|lora_B\.weight|lora_magnitude_vector)$")
_MLX_KEY = re.compile(r"^(?P<module>model\.layers\.(?P<block>\d+)\.(?P<path>.+))\.(?P<part>lora_a|lora_b|m)$")
# PEFT's tensor name -> mlx-lm's; the A and B matrices are transposed (mlx multiplies x @ a @ b), m is a vector
_TO_MLX = {"lora_A.weight": "lora_a", "lora_B.weight": "lora_b", "lora_magnitude_vector": "m"}
_TO_PEFT = {mlx: peft for peft, mlx in _TO_MLX.items()}


def _turned(value):
    return value.T.copy() if value.ndim == 2 else value


def peft_to_mlx(adapter: Path, out: Path, num_blocks: int) -> dict:
    """Write `adapter` (a PEFT LoRA folder) as an mlx-lm adapter folder; `num_blocks`: the base's block count."""
    from safetensors.numpy import load_file, save_file

    config = _peft_config(adapter)
    tensors, keys, blocks = {}, set(), set()
    for name, value in load_file(str(adapter / PEFT_WEIGHTS)).items():
        match = _PEFT_KEY.match(name)
        if not match:
            raise MedtuneError(f"{adapter}: {name} is not a LoRA weight inside a transformer block; mlx-lm "
                               "adapters cover the blocks' linear layers only")
        tensors[f"{match['module']}.{_TO_MLX[match['part']]}"] = _turned(value)
        keys.add(match["path"])
        blocks.add(int(match["block"]))
    r, alpha = config["r"], config["lora_alpha"]
    scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
    kind = "dora" if config.get("use_dora") else "lora"
    mlx_config = {"fine_tune_type": kind, "num_layers": num_blocks - min(blocks),  # the top blocks mlx adapts
                  "lora_parameters": {"rank": r, "scale": scale, "dropout": config.get("lora_dropout", 0.0),
                                      "keys": sorted(keys)}}
    with writing(out, "export") as partial:  # out appears whole, or not at all
        save_file(tensors, str(partial / MLX_WEIGHTS))
        (partial / MLX_CONFIG).write_text(json.dumps(mlx_config, indent=2) + "\n", encoding="utf-8")
        _check_written(partial / MLX_WEIGHTS, tensors)
    return mlx_config


def mlx_to_peft(adapter: Path, out: Path, base_model: str, num_blocks: int) -> dict:
    """Write an mlx-lm LoRA adapter folder (what `mlx_lm.lora` leaves in ./adapters) as a PEFT adapter of
    `base_model`; alpha = scale x rank, and only the blocks mlx-lm adapted are targeted."""
    from peft import LoraConfig
    from safetensors.numpy import load_file, save_file

    config = _mlx_config(adapter)
    lora = config["lora_parameters"]
    tensors, leaves = {}, set()
    for name, value in load_file(str(adapter / MLX_WEIGHTS)).items():
        match = _MLX_KEY.match(name)
        if not match:
            raise MedtuneError(f"{adapter}: {name} is not a LoRA weight (model.layers.<i>.<module>.lora_a|lora_b|m)")
        tensors[f"base_model.model.{match['module']}.{_TO_PEFT[match['part']]}"] = _turned(value)
        leaves.add(match["path"].rsplit(".", 1)[-1])
    first = num_blocks - config["num_layers"]
    peft = LoraConfig(r=lora["rank"], lora_alpha=lora["scale"] * lora["rank"], lora_dropout=lora["dropout"],
                      target_modules=sorted(leaves), layers_to_transform=list(range(first, num_blocks)),
                      task_type="CAUSAL_LM", base_model_name_or_path=base_model, bias="none",
                      use_dora=config.get("fine_tune_type") == "dora")
    with writing(out, "export") as partial:  # out appears whole, or not at all
        peft.save_pretrained(str(partial))
        save_file(tensors, str(partial / PEFT_WEIGHTS))
        _check_written(partial / PEFT_WEIGHTS, tensors)
    return {"r": lora["rank"], "lora_alpha": peft.lora_alpha, "target_modules": sorted(leaves), "first_block": first}


def _check_written(path: Path, tensors: dict) -> None:
    """The file just written opens (its header read back) and holds each tensor with its shape."""
    from safetensors import safe_open

    check_safetensors(path)
    with safe_open(str(path), framework="numpy") as f:
        shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    if shapes != {name: tuple(value.shape) for name, value in tensors.items()}:
        raise MedtuneError(f"{path.name}: read back, it does not hold the tensors written (nothing was kept)")


def _peft_config(adapter: Path) -> dict:
    path = adapter / ADAPTER_FILE
    if not path.is_file() or not (adapter / PEFT_WEIGHTS).is_file():
        raise MedtuneError(f"{adapter}: no {ADAPTER_FILE} + {PEFT_WEIGHTS}, so it is not a PEFT adapter folder")
    check_safetensors(adapter / PEFT_WEIGHTS)
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA":
        raise MedtuneError(f"{adapter}: a {config.get('peft_type')} adapter; only LoRA converts to mlx-lm")
    return config


def _mlx_config(adapter: Path) -> dict:
    path = adapter / MLX_CONFIG
    if not path.is_file() or not (adapter / MLX_WEIGHTS).is_file():
        raise MedtuneError(f"{adapter}: no {MLX_CONFIG} + {MLX_WEIGHTS}, so it is not an mlx-lm adapter folder "
                           "(mlx_lm.lora writes them to ./adapters)")
    check_safetensors(adapter / MLX_WEIGHTS)
    config = json.loads(path.read_text(encoding="utf-8"))
    kind = config.get("fine_tune_type", "lora")
    if kind not in ("lora", "dora"):
        raise MedtuneError(f"{adapter}: fine_tune_type {kind}; only LoRA and DoRA adapters convert to PEFT (a full "
                           "fine-tune is a whole model: load its folder as the model)")
    missing = [k for k in ("rank", "scale", "dropout") if k not in config.get("lora_parameters", {})]
    if missing or "num_layers" not in config:
        raise MedtuneError(f"{path}: missing {', '.join(missing or ['num_layers'])}")
    return config
