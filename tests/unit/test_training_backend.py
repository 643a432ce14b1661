"""training.backend: auto picks mlx on Apple silicon where mlx-lm is installed and torch elsewhere, and says why;
mlx asked for without mlx-lm is one line naming the install; what the mlx backend cannot do is refused (or, under
auto, trained on torch)."""

import pytest

from medtune import config as config_mod
from medtune.errors import ConfigError, MedtuneError
from medtune.training.backend import INSTALL, apple_silicon, resolve


def cfg(**values):
    return config_mod.load(None, values=values)


def test_auto_is_torch_on_linux_and_says_why():
    backend = resolve(cfg(), on_apple_silicon=False, has_mlx=True)
    assert backend.name == "torch" and backend.line() == "backend: torch (auto: not Apple silicon)"
    assert not apple_silicon("Linux", "x86_64") and apple_silicon("Darwin", "arm64")


def test_auto_is_mlx_on_apple_silicon_with_mlx_lm():
    assert resolve(cfg(), on_apple_silicon=True, has_mlx=True).line() == \
        "backend: mlx (auto: Apple silicon with mlx-lm installed)"
    without = resolve(cfg(), on_apple_silicon=True, has_mlx=False)
    assert without.name == "torch" and INSTALL in without.why


def test_mlx_without_mlx_lm_is_one_line_naming_the_install():
    with pytest.raises(MedtuneError, match=r"training.backend: mlx needs mlx-lm, .*pip install 'medtune\[mlx\]'"):
        resolve(cfg(**{"training.backend": "mlx"}), has_mlx=False)


@pytest.mark.parametrize("values, named", [
    ({"training.stage": "grpo"}, "training.stage: grpo"),
    ({"training.lr_scheduler": "cosine_with_min_lr"}, "training.lr_scheduler"),
])
def test_what_mlx_cannot_do_is_refused_or_left_to_torch_under_auto(values, named):
    with pytest.raises(ConfigError, match=named):
        resolve(cfg(**{"training.backend": "mlx", **values}), has_mlx=True)
    backend = resolve(cfg(**values), on_apple_silicon=True, has_mlx=True)
    assert backend.name == "torch" and named in backend.why


@pytest.mark.parametrize("values", [{"lora.method": "qlora"}, {"lora.method": "full"}, {"lora.use_dora": True},
                                    {"training.method": "full"}])
def test_every_fine_tuning_method_trains_on_mlx(values):
    assert resolve(cfg(**values), on_apple_silicon=True, has_mlx=True).name == "mlx"


def test_adamw_8bit_runs_as_adamw_on_mlx_and_the_line_says_so():
    backend = resolve(cfg(**{"training.optimizer": "adamw_8bit"}), on_apple_silicon=True, has_mlx=True)
    assert backend.name == "mlx" and "adamw_8bit runs as AdamW with full-precision states" in backend.line()


def test_torch_asked_is_torch_everywhere():
    assert resolve(cfg(**{"training.backend": "torch"}), on_apple_silicon=True, has_mlx=True).name == "torch"


def test_the_mlx_engine_without_mlx_lm_is_one_line_naming_the_install(monkeypatch):
    import importlib.util

    from medtune.inference import mlx_engine

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("mlx") else real(name))
    with pytest.raises(MedtuneError, match=r"--engine mlx needs mlx-lm, .*pip install 'medtune\[mlx\]'"):
        mlx_engine.require_mlx()
    assert resolve(cfg(), on_apple_silicon=True).name == "torch"  # auto: no mlx-lm, torch (and the line says why)


@pytest.mark.parametrize("recipe", ["phi4-mini-reasoning-lora.yaml", "phi3-mini-r8-top8.yaml",
                                    "r1-distill-llama-8b-qlora.yaml"])
def test_the_mac_recipes_train_on_mlx_under_auto(recipe):
    """The two Mac workflows (and the T4's QLoRA recipe) are one `medtune train` there: nothing in them sends auto
    back to torch."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "configs" / recipe
    backend = resolve(config_mod.load(path), on_apple_silicon=True, has_mlx=True)
    assert backend.name == "mlx", backend.why
