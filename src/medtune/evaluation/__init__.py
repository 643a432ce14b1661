"""`medtune eval`: medical benchmarks, judged open-ended answers, safety refusals, base versus tuned on the same items.

    tasks/         one class per kind of task (multiple choice, open-ended, safety), each owning how its items are
                   asked, scored, summarised, paired and shown; the built-in benchmarks; load_task
    evaluate.py    an evaluation run: tasks, systems (model, base or another model), judge, results
    records.py     ItemRecord: one line of items.jsonl, typed, written and read in one place
    results.py     EvalResults: results.json, typed, written and read in one place
    scoring.py     one completion's scores with no run directory (format, MCQ choice, similarity, judge): RL rewards
    runner.py      what running shares: progress bars, the warm-up, batched generation, timing
    layouts.py     the hub layouts of MedQA, MedMCQA, MMLU and PubMedQA -> medtune's one MCQ schema
    hub.py         a hub dataset loaded as a task's rows
    loglik.py      multiple choice by log-likelihood, as lm-evaluation-harness computes it
    extract.py     the answer letter of a generated multiple-choice answer
    similarity.py  embedding similarity between answers and reference answers
    judge.py       LLM-as-judge: rubric scores, retries, the judge cache
    judging.py     which judge grades (endpoint or local model), checked before any model loads
    stats.py       intervals, McNemar, paired bootstrap and permutation tests (scipy), Holm, paired records
    formatting.py  how figures are written in reports and console lines
    report.py      report.md, plots and the console summary (each kind's summary shows its own figures)

`medtune compare` (medtune.compare) runs the same evaluation on several inputs.
"""
