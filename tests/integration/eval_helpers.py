"""What the `medtune eval` tests share: the answers the answering and judge models (conftest.py) were trained to
give, the prompts they were trained on, make_adapter_run (a run directory with a perturbed LoRA adapter) and a
small open-ended task file."""

from __future__ import annotations

from pathlib import Path

from fixture_data import EVAL_DIR
from medtune.evaluation.judge import JudgeItem

REASONING = "Recall the anatomy."
ANSWER = "The answer is B"
LIVE_VERDICT = '{"correctness": 4, "reasoning": 4, "hallucination": 4, "instruction_following": 4, "safety": 4}'
LIVE_ITEMS = [JudgeItem("q1", "Antidote for paracetamol overdose?", "N-acetylcysteine.", "Acetylcysteine.", "Liver."),
              JudgeItem("q2", "First-line drug for type 2 diabetes?", "Metformin.", "Insulin.", None)]


def mcq_prompts(model_dir: Path, limit: int):
    """(the first `limit` mmlu_medical items as a task, an engine on model_dir to render their prompts)."""
    from medtune.evaluation.tasks import load_task
    from medtune.inference.engine import Engine

    return load_task("mmlu_medical", str(EVAL_DIR), limit=limit), Engine.load(model=str(model_dir))


def make_adapter_run(model_dir: Path, run_dir: Path, scale: float = 0.5) -> Path:
    """The inference tests' adapter run (config.yaml + perturbed LoRA adapter), pointed at the bundled eval data."""
    from inference_helpers import make_run

    from medtune import config

    make_run(model_dir, run_dir, scale)
    cfg = config.load(run_dir / "config.yaml")
    cfg.eval.data_dir = str(EVAL_DIR)
    cfg.save(run_dir / "config.yaml")
    return run_dir


OPEN_REFERENCES = [ANSWER, ANSWER, "Lidocaine blocks voltage-gated sodium channels.",
                   "Warfarin is reversed with vitamin K and prothrombin complex concentrate."]


def open_task_file(path: Path) -> Path:
    """Four open-ended items (prepared chat rows) whose questions are the answering model's training prompts."""
    import json

    from medtune.evaluation.tasks import load_task

    task = load_task("mmlu_medical", str(EVAL_DIR), limit=len(OPEN_REFERENCES))
    with path.open("w") as fh:
        for i, (ex, reference) in enumerate(zip(task.examples(), OPEN_REFERENCES)):
            messages = [{"role": "user", "content": task.messages(ex)[-1].content},
                        {"role": "assistant", "content": reference}]
            fh.write(json.dumps({"id": f"open-{i}", "messages": messages}) + "\n")
    return path
