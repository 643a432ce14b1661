"""`medtune eval`: medical benchmarks, judged open-ended answers, safety refusals, base versus tuned on the same items.

    tasks.py           task files and names -> tasks: multiple choice, open-ended, safety
    layouts.py         the hub layouts of MedQA, MedMCQA, MMLU and PubMedQA -> medtune's one MCQ schema
    hub.py             the hub datasets the built-in task names mean when no data folder is given
    safety_tasks.py    safety task files: {prompt, label: safe | unsafe} rows
    evaluate.py        an evaluation run: tasks, systems (model, base or another model), judge, results
    runner.py          one system on a list of tasks -> one record per item (the lines of items.jsonl)
    loglik.py          multiple choice by log-likelihood, as lm-evaluation-harness computes it
    extract.py         the answer letter of a generated multiple-choice answer
    similarity.py      embedding similarity between answers and reference answers
    judge.py           LLM-as-judge: rubric scores, retries, the judge cache
    judging.py         which judge grades (endpoint or local model), checked before any model loads
    endpoint.py        a minimal client for OpenAI-compatible chat endpoints (the judge's, and the safety guard's)
    safety_records.py  the safety fields of a safety item's record (layer and model refusals)
    stats.py           accuracy intervals, paired base-versus-tuned tests, summaries
    report.py          results.json, items.jsonl, report.md, plots and the console summary
    safety_report.py   the safety tasks' lines and tables in that summary and report

`medtune compare` (medtune.compare) runs the same evaluation on several inputs.
"""
