"""Loading a base model and its tokenizer: dtype, device, attention kernel, RoPE scaling, 4-bit NF4 for QLoRA.

Everything goes through `from_pretrained` (a hub id or a local folder), reading safetensors only and running
hub code only when the config says so. What the user can fix comes back as one MedtuneError line.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import resource
import sys
from pathlib import Path

from medtune import hub
from medtune.config import ModelConfig
from medtune.errors import ConfigError, MedtuneError, WeightsError, first_line
from medtune.models import gguf

METHODS = ("lora", "qlora", "full")
SAFETENSORS_INDEX = "model.safetensors.index.json"
MAX_HEADER = 100_000_000  # safetensors' own limit on a header's length


def default_device() -> str:
    """The accelerator torch can see, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


NATIVE_BF16 = (8, 0)  # Ampere and later: bf16 matmuls in hardware
FLASH_ATTENTION_2 = (8, 0)  # flash-attn 2's kernels: Ampere, Ada, Hopper


def cuda_capability(device: str) -> tuple[int, int]:
    """The compute capability of the CUDA GPU `device` names ("cuda" = the current one): (7, 5) for a T4."""
    import torch

    return tuple(torch.cuda.get_device_capability(torch.device(device)))


def native_bf16(device: str) -> bool:
    """True when the GPU computes in bf16 natively. Not torch.cuda.is_bf16_supported(): by default it also counts
    emulation, and says True on a T4 (sm75), where bf16 is only emulated. This is what
    is_bf16_supported(including_emulation=False) tests, for the GPU of `device` rather than the current one."""
    import torch

    if torch.version.hip:  # as torch: every ROCm GPU it builds for computes in bf16
        return True
    return cuda_capability(device) >= NATIVE_BF16


def resolve_dtype(name: str, device: str):
    """dtype "auto": bf16 on CUDA GPUs that compute it natively (compute capability 8.0 and up), fp16 on older
    CUDA GPUs (T4, V100), fp32 elsewhere (CPU, MPS)."""
    import torch

    if name != "auto":
        return getattr(torch, name)
    if device.startswith("cuda"):
        return torch.bfloat16 if native_bf16(device) else torch.float16
    return torch.float32


def weights_dtype(dtype, method: str | None):
    """The dtype the weights load in: the run's dtype, except that a full fine-tune in fp16 keeps fp32 weights
    (fp16 autocast runs the matmuls): the Trainer's gradient scaler refuses fp16 gradients, and AdamW's updates
    to fp16 weights round away. bf16 weights train as loaded (transformers' Trainer keeps no fp32 copy)."""
    import torch

    return torch.float32 if method == "full" and dtype == torch.float16 else dtype


def flash_unusable(dtype, device: str, flash_installed: bool | None = None) -> str | None:
    """Why flash-attention 2 cannot run here (None when it can): the package, the device, the dtype, the GPU."""
    import torch
    from transformers.utils import is_flash_attn_2_available

    flash_installed = is_flash_attn_2_available() if flash_installed is None else flash_installed
    if not flash_installed:
        return "the flash-attn package is not installed"
    if not device.startswith("cuda"):
        return f"{device} is not a CUDA GPU"
    if dtype not in (torch.float16, torch.bfloat16):
        return f"it has no {str(dtype).removeprefix('torch.')} kernels (bfloat16/float16 only)"
    capability = cuda_capability(device)
    if capability < FLASH_ATTENTION_2:  # transformers checks only the package: on a T4 the first forward fails
        return (f"this GPU has compute capability {capability[0]}.{capability[1]} and flash-attention 2 needs "
                f"{FLASH_ATTENTION_2[0]}.{FLASH_ATTENTION_2[1]} (Ampere or later)")
    return None


def resolve_attn_implementation(name: str, dtype, device: str, flash_installed: bool | None = None) -> str | None:
    """Attention "auto": flash-attention 2 on a CUDA GPU of compute capability 8.0 or later, in half precision,
    when installed; else None, which lets transformers pick sdpa (or eager for a model without sdpa support)."""
    why_not = flash_unusable(dtype, device, flash_installed) if name in ("auto", "flash_attention_2") else None
    if name == "flash_attention_2" and why_not:
        raise ConfigError(f"model.attn_implementation = flash_attention_2 cannot run here: {why_not}; use auto or "
                          "sdpa")
    if name != "auto":
        return name
    return None if why_not else "flash_attention_2"


def attention_note(name: str, dtype, device: str, flash_installed: bool | None = None) -> str | None:
    """Why "auto" did not pick flash-attention 2 although it is installed and this is a CUDA GPU (a T4, fp32):
    said on the start-up line, so a slower kernel is never a surprise. None otherwise."""
    if name != "auto" or not device.startswith("cuda"):
        return None
    why_not = flash_unusable(dtype, device, flash_installed)
    installed = why_not != "the flash-attn package is not installed"
    return f"not flash-attention 2: {why_not}" if why_not and installed else None


def load_tokenizer(model_cfg: ModelConfig, padding_side: str = "right"):
    """The model's tokenizer, with a pad token (pad, else unk, else eos) and the padding side asked for."""
    from transformers import AutoTokenizer

    name = _check_name(model_cfg.tokenizer or model_cfg.name, needs=None, gguf_cache=model_cfg.gguf_cache)
    tokenizer = _from_pretrained(AutoTokenizer.from_pretrained, name, revision=model_cfg.revision,
                                 trust_remote_code=model_cfg.trust_remote_code)
    if tokenizer.pad_token is None:
        # unk first: with pad == eos, a collator that masks labels by pad id also hides every eos from the loss
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    if padding_side not in ("left", "right"):
        raise ConfigError(f"padding side {padding_side!r} is not left or right")
    tokenizer.padding_side = padding_side
    return tokenizer


def load_model_config(model_cfg: ModelConfig):
    """The model's transformers config, with model.rope_scaling merged into its RoPE parameters."""
    from transformers import AutoConfig

    config = _from_pretrained(AutoConfig.from_pretrained, _check_name(model_cfg.name, gguf_cache=model_cfg.gguf_cache),
                              revision=model_cfg.revision,
                              trust_remote_code=model_cfg.trust_remote_code)
    if model_cfg.rope_scaling:
        apply_rope_scaling(config, model_cfg.rope_scaling)
    return config


def local_model_folder(model_cfg: ModelConfig) -> str:
    """The model as a local folder (what mlx-lm loads): a folder as it is, a GGUF file or the built-in model
    converted, a hub id from the cache or downloaded (huggingface_hub's own rules on being offline)."""
    name = _check_name(model_cfg.name, gguf_cache=model_cfg.gguf_cache)
    if Path(name).is_dir():
        return name
    from huggingface_hub import snapshot_download

    return snapshot_download(name, revision=model_cfg.revision)


def apply_rope_scaling(config, rope_scaling: dict) -> None:
    """Merge {type|rope_type: linear, factor: 2.0, ...} into config.rope_parameters (transformers 5 layout)."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    scaling = dict(rope_scaling)
    kind = scaling.pop("rope_type", None) or scaling.pop("type", None)
    if kind not in ROPE_INIT_FUNCTIONS:
        raise ConfigError(f"model.rope_scaling: type {kind!r} is not one of {', '.join(ROPE_INIT_FUNCTIONS)}")
    config.rope_parameters = {**(config.rope_parameters or {}), **scaling, "rope_type": kind}
    try:
        config.validate_rope()
    except (KeyError, ValueError) as e:
        raise ConfigError(f"model.rope_scaling: {str(e).strip(chr(34))}") from None


def load_model(model_cfg: ModelConfig, method: str | None = None, device: str | None = None,
               sharded: bool = False, *, nf4: bool = False, prepare_kbit: bool = True):
    """The base model for `method` (lora, qlora, full) or for inference (None), placed on `device`; `sharded`
    (FSDP, DeepSpeed): loaded without a device map, for accelerate to shard and place. `nf4`: for inference, the
    base in 4-bit NF4 as a QLoRA run trained on it. `prepare_kbit` False (FSDP, ZeRO-3): a QLoRA base is not run
    through peft's prepare_model_for_kbit_training (see _prepare)."""
    if method is not None and method not in METHODS:
        raise ConfigError(f"method {method!r} is not one of {', '.join(METHODS)}")
    device = device or default_device()
    config = load_model_config(model_cfg)
    dtype = resolve_dtype(model_cfg.dtype, device)
    kwargs = dict(config=config, dtype=weights_dtype(dtype, method), device_map=None if sharded else {"": device},
                  use_safetensors=True, revision=model_cfg.revision, trust_remote_code=model_cfg.trust_remote_code,
                  attn_implementation=resolve_attn_implementation(model_cfg.attn_implementation, dtype, device))
    quantized = method == "qlora" or nf4
    if quantized:
        kwargs["quantization_config"] = nf4_config(dtype, sharded)
    name = _check_name(model_cfg.name, gguf_cache=model_cfg.gguf_cache)
    if Path(name).is_dir():
        check_model_folder(Path(name))
    return _prepare(_load_weights(name, "qlora" if quantized else method, device, kwargs), method, prepare_kbit)


# ---------------------------------------------------------------- weights files, checked before anything loads them


def check_safetensors(path: Path) -> None:
    """Raise WeightsError naming `path` unless safetensors opens it. Cheap: safe_open reads the header and maps the
    file, no tensor is read. A file cut short (a copy or download that stopped, a killed writer) says both sizes."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: missing")
    try:
        with safe_open(str(path), framework="numpy"):
            return
    except SafetensorError as error:
        problem = _size_problem(path) or first_line(error)
    raise WeightsError(f"{path}: not a readable safetensors file ({problem})")


def _size_problem(path: Path) -> str | None:
    """What the header says against what the file holds (a safetensors file is 8 bytes giving the header's length,
    the JSON header, then the tensors' bytes up to the largest end offset); None when they agree."""
    size = path.stat().st_size
    if size == 0:
        return "empty"
    if size < 8:
        return f"truncated: {size} bytes, fewer than the 8 that give the header's length"
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        if length > MAX_HEADER:
            return "no safetensors header: its first 8 bytes do not give a header's length"
        if 8 + length > size:
            return f"truncated: its header alone is {8 + length} bytes, file has {size}"
        raw = f.read(length)
    try:
        header = json.loads(raw)
        ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return "its header is not JSON naming tensors and their offsets"
    expected = 8 + length + max(ends, default=0)
    if size < expected:
        return f"truncated: header says {expected} bytes, file has {size}"
    if size > expected:
        return f"bytes past its end: header says {expected} bytes, file has {size}"
    return None


def check_model_folder(folder: Path) -> None:
    """The safetensors weights of a model folder are whole: every shard its index names, else model.safetensors.
    (A folder with neither is left to from_pretrained, which says what it looked for.)"""
    folder = Path(folder)
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise WeightsError(f"{index}: not a readable index of shards (no weight_map)") from None
        for shard in shards:
            if not (folder / shard).is_file():
                raise WeightsError(f"{folder / shard}: missing (named by {SAFETENSORS_INDEX})")
            check_safetensors(folder / shard)
    elif (folder / "model.safetensors").is_file():
        check_safetensors(folder / "model.safetensors")


def nf4_config(compute_dtype, sharded: bool = False):
    """QLoRA's 4-bit NormalFloat with double quantisation; matmuls run in `compute_dtype`. Sharded (FSDP): the
    packed 4-bit weights are stored in the compute dtype, so FSDP can flatten them with the float weights (as
    PEFT's and bitsandbytes' FSDP-QLoRA guides set bnb_4bit_quant_storage)."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise MedtuneError("qlora needs bitsandbytes: pip install 'medtune[qlora]' (or use method lora)")
    from transformers import BitsAndBytesConfig

    storage = {"bnb_4bit_quant_storage": compute_dtype} if sharded else {}
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype, **storage)


def _load_weights(name: str, method: str | None, device: str, kwargs: dict):
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    try:
        return _from_pretrained(AutoModelForCausalLM.from_pretrained, name, **kwargs)
    except SafetensorError as e:  # a hub model's cached file (a local folder is checked before it loads)
        raise WeightsError(f"{name}: a weights file is not readable safetensors ({first_line(e)}); download the "
                           f"model again (huggingface-cli download {name} --force-download)") from None
    except (ImportError, RuntimeError, ValueError) as e:
        if method != "qlora":
            raise
        raise MedtuneError(f"4-bit (qlora) loading failed on {device}: {first_line(e)}. It needs bitsandbytes "
                           "with a backend for this device (CUDA, or CPU from bitsandbytes 0.48 on); "
                           "or train with method lora, or run a QLoRA run's merged folder (medtune merge)") from None


def _prepare(model, method: str | None, prepare_kbit: bool = True):
    if method is None:
        return model.eval()
    if method == "qlora" and prepare_kbit:
        from peft import prepare_model_for_kbit_training

        # fp32 norms/embeddings for stable 4-bit training; gradient checkpointing is training.gradient_checkpointing.
        # Not under FSDP / ZeRO-3 (TRL skips it there too): the fp32 norms would share units with the 4-bit weights
        # stored in the compute dtype, and FSDP flattens a unit only in one dtype ("Must flatten tensors with
        # uniform dtype")
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model.train()


def _check_name(name: str, needs: str | None = "config.json", gguf_cache: str | None = None) -> str:
    """Fail fast, and without a network round trip, on names that cannot be a model (or tokenizer).
    A GGUF file (or the built-in smollm2-135m-instruct) becomes its converted safetensors folder first."""
    if not name:
        raise ConfigError("model.name is empty: give a hub id (microsoft/Phi-4-mini-instruct) or a local folder")
    name = gguf.local_folder(name, gguf_cache)
    path = Path(name).expanduser()
    if path.is_dir() and needs and not (path / needs).is_file():
        raise MedtuneError(f"{name}: this folder has no {needs}, so it is not a Hugging Face model folder")
    if not path.is_dir() and (name.startswith((".", "/", "~")) or name.count("/") > 1):
        raise MedtuneError(f"{name}: no such local folder (and not a hub id of the form owner/name)")
    return str(path) if path.is_dir() else name


@functools.lru_cache(maxsize=32)
def _hub_access(name: str) -> bool:
    """For a hub id: True to read the hub, False to read only the local cache (see medtune.hub)."""
    found = hub.probe(name)
    if found.state != hub.UNREACHABLE:
        return found.state != hub.OFFLINE  # missing: from_pretrained says there is no such model
    if hub.cached([name], "config.json"):
        return False
    raise MedtuneError(
        f"{name}: not a local folder, and the Hugging Face Hub cannot be reached ({found.reason}); download "
        f"it where the hub is reachable (huggingface-cli download {name} --local-dir DIR) and set model.name to DIR")


MODEL_FOLDER_FILES = ("config.json", "tokenizer_config.json", "tokenizer.json")  # at least one: a model's folder


def _from_pretrained(load, name: str, **kwargs):
    """Call a from_pretrained, turning 'not found' into one line that says where medtune looked."""
    folder = Path(name)
    if folder.is_dir() and not any((folder / f).is_file() for f in MODEL_FOLDER_FILES):
        raise MedtuneError(f"{name}: no {' or '.join(MODEL_FOLDER_FILES)}: not a model folder")
    if not folder.is_dir() and not _hub_access(name):
        kwargs["local_files_only"] = True
    try:
        return load(name, **kwargs)
    except (OSError, ValueError) as e:  # ValueError: a folder whose tokenizer files transformers cannot read
        if folder.is_dir():
            raise MedtuneError(f"{name}: cannot load from this folder: {first_line(e)}") from None
        if isinstance(e, ValueError):
            raise
        raise MedtuneError(f"{name}: not a local folder, and the hub could not be reached or has no such model "
                           f"({first_line(e)})") from None


def describe_device(device: str | None = None) -> str:
    """A short name for run.json and logs: "cpu (2 cores)", "cuda:0 NVIDIA H200, 139 GiB", "mps"."""
    import torch

    device = device or default_device()
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        return f"cuda:{index} {props.name}, {props.total_memory // 2**30} GiB"
    if device == "cpu":
        return f"cpu ({len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores)"
    return device


def reset_peak_memory() -> None:
    """Start a new peak on the GPU (per generation, not per process); the CPU's resident-set peak cannot be reset."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb() -> float:
    """Peak memory so far: CUDA max allocated since the last reset when torch has used a GPU, else the process's
    max resident set."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux
