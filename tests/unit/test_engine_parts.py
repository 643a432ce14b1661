"""Engine parts without a model: incremental detokenizing, stop strings, sampling parameters, row stops."""

import threading

import pytest

from medtune.errors import MedtuneError
from medtune.inference.decoding import IncrementalDecoder, Row, StopStrings
from medtune.inference.params import SamplingParams

TEXT = "Héllo wörld 🩺 <think>dose 5 mg</think> done."


def test_incremental_decoding_rebuilds_the_text_exactly(tokenizer):
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.add(i) for i in ids]
    assert "".join(pieces) == tokenizer.decode(ids) == TEXT
    assert all("\ufffd" not in p for p in pieces)  # multi-byte characters are never split


def test_stop_strings_cut_the_text_and_hold_back_partial_matches():
    stops = StopStrings(["###", "STOP"])
    assert stops.add("Answer: a") == ("Answer: a", False)
    assert stops.add("b #") == ("b ", False)  # '#' may start '###'
    assert stops.add("#") == ("", False)
    assert stops.add("# more") == ("", True)
    assert stops.text == "Answer: ab "


def test_stop_string_across_many_small_deltas():
    stops = StopStrings(["</answer>"])
    out = "".join(stops.add(c)[0] for c in "x</ans")
    assert out == "x" and stops.add("wer>tail") == ("", True) and stops.text == "x"


def test_no_stop_strings_pass_everything():
    stops = StopStrings([])
    assert stops.add("abc") == ("abc", False)
    assert stops.flush() == ""


def _row(tokenizer, max_tokens=5, stop_ids=(), stops=(), on_delta=None):
    return Row(tokenizer, max_tokens, set(stop_ids), list(stops), False, None, on_delta, threading.Event())


def test_row_stops_on_stop_token_and_counts_it(tokenizer):
    ids = tokenizer("hello there", add_special_tokens=False)["input_ids"]
    row = _row(tokenizer, max_tokens=100, stop_ids={tokenizer.eos_token_id})
    assert [row.step(i) for i in [*ids, tokenizer.eos_token_id]] == [False] * len(ids) + [True]
    text, split = row.finish()
    assert (text, split.answer, row.finish_reason, row.count) == ("hello there", "hello there", "stop", len(ids) + 1)


def test_row_length_and_cancel(tokenizer):
    ids = tokenizer("one two three four five six", add_special_tokens=False)["input_ids"]
    row = _row(tokenizer, max_tokens=2)
    assert [row.step(i) for i in ids[:3]] == [False, True, True]
    assert row.finish_reason == "length" and row.count == 2
    cancelled = _row(tokenizer)
    cancelled.step(ids[0])
    cancelled.cancel.set()
    assert cancelled.step(ids[1]) and cancelled.finish_reason == "cancelled"


def test_row_streams_reasoning_and_answer(tokenizer):
    deltas = []
    row = _row(tokenizer, max_tokens=100, on_delta=deltas.append)
    for i in tokenizer("<think>low iron</think>anemia", add_special_tokens=False)["input_ids"]:
        row.step(i)
    row.finish()
    assert "".join(d.text for d in deltas if d.kind == "reasoning") == "low iron"
    assert "".join(d.text for d in deltas if d.kind == "answer") == "anemia"


@pytest.mark.parametrize("bad, field", [
    (dict(max_tokens=0), "max_tokens"), (dict(temperature=-1), "temperature"), (dict(top_p=0), "top_p"),
    (dict(top_k=-2), "top_k"), (dict(repetition_penalty=0), "repetition_penalty"),
])
def test_bad_sampling_values_name_the_field(bad, field):
    with pytest.raises(MedtuneError, match=field):
        SamplingParams(**bad).check()


def test_batch_key_ignores_what_rows_may_differ_in():
    assert SamplingParams(max_tokens=5, stop=["x"]).batch_key == SamplingParams(max_tokens=9).batch_key
    assert SamplingParams(seed=1).batch_key == SamplingParams(seed=2).batch_key  # greedy: seed is moot
    assert SamplingParams(temperature=0.7, seed=1).batch_key != SamplingParams(temperature=0.7, seed=2).batch_key


def test_generation_config_sets_every_knob():
    greedy = SamplingParams().generation_config(10, [2, 7], 3)
    assert (greedy.do_sample, greedy.max_new_tokens, greedy.eos_token_id) == (False, 10, [2, 7])
    sampled = SamplingParams(temperature=0.7).generation_config(10, [2], 3)
    assert (sampled.do_sample, sampled.top_k, sampled.top_p) == (True, 0, 1.0)  # not transformers' top_k=50
    assert SamplingParams(ignore_eos=True).generation_config(10, [2], 3).eos_token_id == []
