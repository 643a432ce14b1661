"""`medtune compare`: several runs or models on the same items with the same seed, as a study report.

    runs.py      the inputs (run directories or model names), their labels and what training measured
    evals.py     one set of evaluation settings for all; a run's stored eval reused when it holds the same items
    pairs.py     paired statistics between every two inputs on the items both have (McNemar, paired bootstrap)
    findings.py  the sentences of the report, each derived from a significant difference or a measured ratio
    report.py    report.md, results.json and the console table
    plots.py     losses overlaid, accuracy with 95% intervals, speed and memory, judge scores
    study.py     the whole comparison, start to end
"""
