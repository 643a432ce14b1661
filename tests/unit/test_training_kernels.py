"""training.kernels: liger on a CUDA GPU with liger-kernel (auto), none elsewhere, refused where asked for and it
cannot run; the Trainer arguments that apply it, which TRL accepts; the loss line (TRL's chunked LM head)."""

import pytest

from medtune import config as config_mod
from medtune.errors import ConfigError
from medtune.training.backend import check_supported
from medtune.training.kernels import Kernels, resolve


def cfg(**values):
    return config_mod.load(None, values=values)


def test_auto_is_none_on_a_cpu_and_says_why():
    kernels = resolve(cfg(), "cpu", installed=True)
    assert kernels.name == "none" and kernels.trainer_args() == {}
    assert kernels.line().startswith("kernels: none (auto: Liger's Triton kernels need a CUDA GPU, and this run is on "
                                     "cpu); loss: TRL's chunked LM head")


def test_auto_is_liger_on_a_cuda_gpu_with_the_package():
    kernels = resolve(cfg(), "cuda:0 NVIDIA H100", installed=True)
    assert kernels.name == "liger"
    assert kernels.trainer_args() == {"use_liger_kernel": True,
                                      "liger_kernel_config": {"fused_linear_cross_entropy": False}}


def test_auto_without_the_package_names_the_install():
    kernels = resolve(cfg(), "cuda", installed=False)
    assert kernels.name == "none" and "pip install liger-kernel" in kernels.why


@pytest.mark.parametrize("device, installed, named", [("cpu", True, "need a CUDA GPU"),
                                                      ("cuda", False, "pip install liger-kernel")])
def test_liger_asked_for_where_it_cannot_run_is_one_line(device, installed, named):
    with pytest.raises(ConfigError, match=rf"^training.kernels = liger cannot run here: .*{named}.*; set "
                                          r"training.kernels=auto or none$"):
        resolve(cfg(**{"training.kernels": "liger"}), device, installed=installed)


def test_none_is_none_everywhere():
    assert resolve(cfg(**{"training.kernels": "none"}), "cuda", installed=True).name == "none"


def test_trl_takes_the_arguments_and_the_run_refuses_before_loading(tmp_path):
    from trl import SFTConfig

    from medtune.rundir import RunDir
    from medtune.training import args as args_mod

    liger = Kernels("liger", "test").trainer_args()
    made = SFTConfig(output_dir=str(tmp_path), use_cpu=True, **liger)
    assert made.use_liger_kernel and made.liger_kernel_config == {"fused_linear_cross_entropy": False}
    plan = args_mod.Plan("padding_free", 1, 1, False, None, None, 4)
    with pytest.raises(ConfigError, match="training.kernels = liger cannot run here"):
        args_mod.trainer_args(cfg(**{"training.kernels": "liger"}), RunDir(tmp_path / "run"), plan, None, "cpu")
    assert "use_liger_kernel" not in args_mod.trainer_args(cfg(), RunDir(tmp_path / "run"), plan, None, "cpu")


def test_the_mlx_backend_refuses_liger():
    with pytest.raises(ConfigError, match="training.kernels: liger"):
        check_supported(cfg(**{"training.kernels": "liger"}))
