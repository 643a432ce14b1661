"""Several processes, without starting any: which rank writes, where each loads, the launcher command lines, the
plan's step count and batch line, QLoRA storage for FSDP, and the accelerate configs in configs/accelerate/."""

from __future__ import annotations

from pathlib import Path

import pytest

from medtune import config as config_mod
from medtune.errors import MedtuneError
from medtune.training import args as args_mod
from medtune.training import distributed, launch
from medtune.training.trainer import startup_lines

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"


def test_a_single_process_is_rank_0_of_1_and_keeps_its_device(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(name, raising=False)
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    assert distributed.device_for("cuda") == "cuda" and distributed.sharded() is None
    distributed.barrier()  # nothing to wait for, and no process group is created
    assert distributed.agree(True) and not distributed.agree(False)


def test_under_a_launcher_each_rank_takes_its_own_gpu_and_only_rank_0_writes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")  # second GPU of the second machine
    assert not distributed.is_main()
    assert distributed.device_for("cuda") == "cuda:1" and distributed.device_for("cpu") == "cpu"
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert distributed.sharded() == "fsdp"
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert distributed.sharded() == "deepspeed"


def test_launcher_commands():
    cmd = launch.command(2, None, ["cfg.yaml", "training.max_steps=4"])
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    assert cmd[-4:] == ["medtune", "train", "cfg.yaml", "training.max_steps=4"]
    config = str(CONFIGS / "fsdp2-lora.yaml")
    cmd = launch.command(4, config, ["cfg.yaml"])
    assert cmd[1:7] == ["-m", "accelerate.commands.launch", "--config_file", config, "--num_processes", "4"]
    assert "--num_processes" not in launch.command(None, config, ["cfg.yaml"])  # the config's own count
    with pytest.raises(MedtuneError, match="no such file"):
        launch.command(2, "none.yaml", [])
    with pytest.raises(MedtuneError, match="1 or more"):
        launch.command(0, None, [])


def test_each_launched_process_gets_the_same_config_overrides_and_resume():
    from medtune.cli import build_parser
    from medtune.commands.train import _child_argv

    args = build_parser("train").parse_args(["train", "cfg.yaml", "lora.r=8", "--nproc", "2", "--max-steps", "4",
                                             "--resume"])
    assert _child_argv(args) == ["cfg.yaml", "lora.r=8", "training.max_steps=4", "--resume"]
    args = build_parser("train").parse_args(["train", "-c", "cfg.yaml", "--nproc", "2", "--resume", "ck/step-4"])
    assert _child_argv(args) == ["--config", "cfg.yaml", "--resume=ck/step-4"]


def test_an_epoch_on_n_processes_has_n_times_fewer_steps_and_the_batch_line_says_so(monkeypatch):
    cfg = config_mod.load(None, values={"training.max_steps": -1, "training.epochs": 1, "training.batch_size": 2,
                                        "training.gradient_accumulation_steps": 1})
    assert args_mod.total_steps(cfg, 10) == 5 and args_mod.total_steps(cfg, 10, processes=2) == 3
    monkeypatch.setenv("WORLD_SIZE", "2")
    plan = args_mod.plan(cfg, False, 10)
    assert plan.processes == 2 and plan.total_steps == 3 and plan.sequences_per_step == 4
    info = {"model": "m", "architecture": "A", "device": "cpu", "dtype": "float32", "attention": None,
            "target_modules": [], "trainable_params": 1, "total_params": 2, "trainable_percent": 50.0,
            "parallel": "DDP (CPU, gloo)"}
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    lines = "\n".join(startup_lines(cfg, info, "data: ...", plan))
    assert "batch 2 x accumulation 1 x 2 processes (= 4 sequences per step)" in lines
    assert "parallel: DDP (CPU, gloo) on 2 processes; rank 0 writes the run" in lines
    assert "asks for fsdp, but accelerate runs DDP (CPU, gloo) here" in lines


def test_qlora_under_fsdp_stores_4bit_weights_in_the_compute_dtype():
    pytest.importorskip("bitsandbytes")
    import torch

    from medtune.models.load import nf4_config

    assert nf4_config(torch.bfloat16, sharded=True).bnb_4bit_quant_storage == torch.bfloat16
    assert nf4_config(torch.bfloat16).bnb_4bit_quant_storage == torch.uint8  # bitsandbytes' own default


EXPECTED = {
    "ddp.yaml": ("MULTI_GPU", {}), "multi-node.yaml": ("MULTI_GPU", {}),
    "fsdp2-lora.yaml": ("FSDP", {"fsdp_version": 2, "fsdp_state_dict_type": "FULL_STATE_DICT"}),
    "fsdp2-full.yaml": ("FSDP", {"fsdp_version": 2, "fsdp_state_dict_type": "SHARDED_STATE_DICT"}),
    "fsdp-qlora.yaml": ("FSDP", {"fsdp_version": 1, "fsdp_use_orig_params": False}),
    "deepspeed-zero2.yaml": ("DEEPSPEED", {"zero_stage": 2, "offload_optimizer_device": "none"}),
    "deepspeed-zero2-offload.yaml": ("DEEPSPEED", {"zero_stage": 2, "offload_optimizer_device": "cpu"}),
    "deepspeed-zero3.yaml": ("DEEPSPEED", {"zero_stage": 3, "offload_param_device": "none"}),
    "deepspeed-zero3-offload.yaml": ("DEEPSPEED", {"zero_stage": 3, "offload_param_device": "cpu"}),
}


def test_accelerate_configs_load_in_accelerate_and_every_key_is_a_launch_option():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    options = {a.dest for a in launch_command_parser()._actions}
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)
    for name, (kind, settings) in EXPECTED.items():
        config = load_config_from_file(str(CONFIGS / name))
        assert str(config.distributed_type).endswith(kind), name
        block = config.fsdp_config or config.deepspeed_config or {}
        assert {k: block.get(k) for k in settings} == settings, name
        assert set(block) <= options, f"{name}: {set(block) - options} are not accelerate launch options"
        assert "--accelerate-config" in (CONFIGS / name).read_text() or name == "multi-node.yaml"
    multi = load_config_from_file(str(CONFIGS / "multi-node.yaml"))
    assert multi.num_machines == 2 and multi.main_process_ip and multi.main_process_port


def test_only_rank_0_opens_a_tracker(monkeypatch, tmp_path):
    from medtune.rundir import RunDir
    from medtune.training.tracking import start_tracking

    cfg = config_mod.load(None, values={"tracking.report_to": "tensorboard"})
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert start_tracking(cfg, RunDir(tmp_path / "run"), "x").callbacks == []
    assert not (tmp_path / "run" / "tracking").exists()  # no second event file, wandb or mlflow run
    monkeypatch.setenv("RANK", "0")
    tracking = start_tracking(cfg, RunDir(tmp_path / "run"), "x")
    assert tracking.callbacks and (tmp_path / "run" / "tracking" / "tensorboard").is_dir()
    tracking.finish()
