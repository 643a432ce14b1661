"""What the mlx backend trains, by lora.method: adapters (lora, DoRA, qlora on a 4-bit mlx base) or the whole model.

Each method's class puts its trainable parameters on the mlx-lm model, says what the start-up lines show, writes
its weights where every other verb reads them (a PEFT adapter, or a transformers model folder) and reads them back
from a checkpoint for `--resume`.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from medtune.config import Config
from medtune.errors import MedtuneError

MLX_DIR = "mlx"  # mlx-lm's adapter, beside the PEFT one
FULL_WEIGHTS = "model.safetensors"
# mlx's 4-bit affine quantization (mlx-lm's default for `mlx_lm.convert -q`): QLoRA's NF4 is bitsandbytes' and
# CUDA's; on mlx the frozen base is quantized the way mlx-lm quantizes it
QUANT_BITS, QUANT_GROUP = 4, 64


def lora_settings(cfg: Config) -> dict:
    """mlx-lm's LoRA parameters: its scale is PEFT's alpha / r (alpha / sqrt(r) with rsLoRA)."""
    lora = cfg.lora
    scale = lora.alpha / math.sqrt(lora.r) if lora.use_rslora else lora.alpha / lora.r
    return {"rank": lora.r, "scale": scale, "dropout": lora.dropout}


def block_keys(mlx_block, leaf_names: list[str]) -> list[str]:
    """The block-relative paths mlx-lm's linear_to_lora_layers takes ("self_attn.q_proj"), for the leaf names
    the config's target modules resolve to (models/lora.py, on the torch model's structure)."""
    import mlx.nn as nn

    found = [path for path, module in mlx_block.named_modules()
             if isinstance(module, (nn.Linear, nn.QuantizedLinear)) and path.rsplit(".", 1)[-1] in leaf_names]
    if not found:
        raise MedtuneError(f"lora.target_modules: none of {', '.join(leaf_names)} is a linear layer in the mlx "
                           "model's blocks")
    return sorted(found)


def leaf_targets(cfg: Config) -> list[str]:
    """The leaf names of the layers to adapt, resolved as the torch backend resolves them (presets, fused layers,
    the output head left out), on the model's structure with no weights loaded."""
    import torch
    from transformers import AutoModelForCausalLM

    from medtune.models.load import load_model_config
    from medtune.models.lora import leaf_names, resolve_target_modules

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(load_model_config(cfg.model))
    names, _ = resolve_target_modules(skeleton, cfg.lora.target_modules)
    return leaf_names(names)


def quantize_blocks(model) -> int:
    """The blocks' linear layers in 4 bits (those whose input width the group divides); returns how many."""
    import mlx.nn as nn

    chosen = []

    def predicate(path: str, module) -> bool:
        ok = (isinstance(module, nn.Linear) and ".layers." in f".{path}"
              and module.weight.shape[1] % QUANT_GROUP == 0)
        if ok:
            chosen.append(path)
        return ok

    nn.quantize(model, group_size=QUANT_GROUP, bits=QUANT_BITS, class_predicate=predicate)
    if not chosen:
        raise MedtuneError(f"lora.method qlora on mlx: no linear layer in the blocks has an input width divisible "
                           f"by {QUANT_GROUP}, so none can be quantized; use lora.method lora")
    return len(chosen)


class Adapters:
    """LoRA or DoRA layers on the top lora.num_layers blocks, the base frozen (and, for qlora, 4-bit)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.kind = "dora" if cfg.lora.use_dora else "lora"

    def put_on(self, model) -> None:
        from mlx_lm.tuner.utils import linear_to_lora_layers

        model.freeze()
        self.quantized = quantize_blocks(model) if self.cfg.method == "qlora" else 0
        blocks = len(model.layers)
        self.num_layers = min(self.cfg.lora.num_layers or blocks, blocks)
        self.lora = {**lora_settings(self.cfg), "keys": block_keys(model.layers[0], leaf_targets(self.cfg))}
        linear_to_lora_layers(model, self.num_layers, self.lora, use_dora=self.cfg.lora.use_dora)

    def describe(self, model, dtype: str) -> dict:
        first = len(model.layers) - self.num_layers
        info = {"target_modules": [f"model.layers.{i}.{key}" for i in range(first, len(model.layers))
                                   for key in self.lora["keys"]], "lora_blocks": self.num_layers}
        if self.quantized:
            info["dtype"] = (f"{dtype}, {self.quantized} block linear layers in {QUANT_BITS}-bit (mlx affine, "
                             f"group {QUANT_GROUP}; NF4 is CUDA's)")
        return info

    def save(self, model, tokenizer, folder: Path) -> None:
        """The adapter in PEFT's format (what every verb reads), mlx-lm's own in folder/mlx."""
        import mlx.core as mx
        from mlx.utils import tree_flatten

        from medtune.export.mlx import MLX_CONFIG, MLX_WEIGHTS, mlx_to_peft

        mlx_dir = folder.parent / f".{folder.name}.mlx"
        mlx_dir.mkdir(parents=True, exist_ok=True)
        mx.save_safetensors(str(mlx_dir / MLX_WEIGHTS), dict(tree_flatten(model.trainable_parameters())))
        config = {"fine_tune_type": self.kind, "num_layers": self.num_layers, "lora_parameters": self.lora}
        (mlx_dir / MLX_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        mlx_to_peft(mlx_dir, folder, self.cfg.model.name, len(model.layers))
        mlx_dir.rename(folder / MLX_DIR)

    def restore(self, model, checkpoint: Path) -> None:
        from medtune.export.mlx import MLX_WEIGHTS

        model.load_weights(str(checkpoint / MLX_DIR / MLX_WEIGHTS), strict=False)


class WholeModel:
    """Full fine-tuning: every weight trains (as the torch backend's `full`); the result is a transformers model
    folder (config, weights, tokenizer) under model/."""

    def __init__(self, cfg: Config, base: Path):
        self.cfg, self.base = cfg, Path(base)

    def put_on(self, model) -> None:
        model.unfreeze()
        self._check_names(model)

    def describe(self, model, dtype: str) -> dict:
        return {"target_modules": []}

    def save(self, model, tokenizer, folder: Path) -> None:
        import mlx.core as mx
        from mlx.utils import tree_flatten

        folder.mkdir(parents=True, exist_ok=True)
        mx.save_safetensors(str(folder / FULL_WEIGHTS), dict(tree_flatten(model.parameters())),
                            metadata={"format": "pt"})  # transformers reads only "pt" safetensors
        for name in ("config.json", "generation_config.json"):
            if (self.base / name).is_file():
                shutil.copy2(self.base / name, folder / name)
        tokenizer.save_pretrained(str(folder))

    def restore(self, model, checkpoint: Path) -> None:
        model.load_weights(str(checkpoint / FULL_WEIGHTS), strict=True)

    def _check_names(self, model) -> None:
        """mlx-lm names most architectures' weights as transformers does; where it does not, the saved model
        would not load in torch, so say so before training rather than after."""
        from mlx.utils import tree_flatten
        from safetensors import safe_open

        ours = {name for name, _ in tree_flatten(model.parameters())}
        theirs = set()
        for path in self.base.glob("*.safetensors"):
            with safe_open(str(path), framework="numpy") as f:
                theirs.update(f.keys())
        missing = sorted(ours - theirs)
        if theirs and missing:
            raise MedtuneError(f"lora.method full on mlx: mlx-lm names {len(missing)} weights unlike the base's "
                               f"files ({', '.join(missing[:3])}), so the trained model would not load in torch; "
                               "set training.backend=torch")


def method_for(cfg: Config, base: Path):
    """The mlx training method for the config's lora.method."""
    return WholeModel(cfg, base) if cfg.method == "full" else Adapters(cfg)
