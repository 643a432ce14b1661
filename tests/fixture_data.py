"""Where the tests' data lives: small cuts of real medical data inside the repository (tests/data/SOURCES.md says
where each file comes from and how it was cut), so the suite needs nothing beside the repository."""

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
MEDICAL_O1_SAMPLE = DATA / "medical_o1_sample.jsonl"  # 60 real medical-o1 records (Question, Complex_CoT, Response)
EVAL_DIR = DATA / "eval"  # medqa, medmcqa, pubmedqa, mmlu_medical: <task>.jsonl in medtune's evaluation schema
SAFETY_DIR = DATA / "safety"  # MedSafetyBench, XSTest and clinical-question samples: {prompt, label, ...}
RL_MCQ = DATA / "rl" / "medical_o1_mcq.jsonl"  # 24 verifiable MCQs (question, options, answer), medical-o1's exams
RL_OPEN = DATA / "rl" / "medical_o1_verifiable.jsonl"  # 24 open problems (Open-ended Verifiable Question, ...)
