"""Tasks: one class per kind of benchmark, each owning how its items are asked, answered, scored, summarised,
paired between two systems and shown (nanochat's tasks/ and lm-eval's task files read the same way).

    base.py        Task: the items, the generated records, RunContext, the summary parts generated kinds share
    mcq.py         MCQTask: multiple choice by log-likelihood (as lm-eval) or generated and parsed; MCQSummary
    open.py        OpenTask: open-ended answers scored by similarity to the reference and the judge; OpenSummary
    safety.py      SafetyTask: refuse or answer? the layer alone (screen) or the whole path; SafetySummary
    benchmarks.py  the built-in benchmarks: name, hub dataset, local file (one entry each)
    loading.py     load_task: a name, file, folder or hub id -> its task, the kind read from its rows

KINDS maps the `kind` results.json records for a task back to its class, whose Summary reads and shows
the stored figures.
"""

from medtune.evaluation.tasks.benchmarks import BENCHMARKS, BUILTIN
from medtune.evaluation.tasks.loading import load_task, resolve
from medtune.evaluation.tasks.mcq import MCQ_FORMATS, MCQExample, MCQSummary, MCQTask
from medtune.evaluation.tasks.open import OpenExample, OpenSummary, OpenTask
from medtune.evaluation.tasks.safety import SafetyExample, SafetySummary, SafetyTask

KINDS = {cls.kind: cls for cls in (MCQTask, OpenTask, SafetyTask)}

__all__ = ["BENCHMARKS", "BUILTIN", "KINDS", "MCQ_FORMATS", "MCQExample", "MCQSummary", "MCQTask",
           "OpenExample", "OpenSummary", "OpenTask", "SafetyExample", "SafetySummary", "SafetyTask", "load_task",
           "resolve"]
