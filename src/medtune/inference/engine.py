"""The one inference engine behind `medtune generate`, `chat`, `serve` (and evaluation and the web page).

    from medtune.inference.engine import Engine, SamplingParams
    from medtune.data.records import Message

    engine = Engine.load(run="runs/phi4-med")   # or Engine.load(model=..., adapter=...), or a merged folder
    params = SamplingParams(max_tokens=1024, temperature=0.0)       # 0 = greedy

    # batched: left padding, one forward per step for the whole batch
    gens = engine.generate([[Message("user", q)] for q in questions], params, batch_size=16)
    gens[0].reasoning, gens[0].answer, gens[0].finish_reason, gens[0].stats.tokens_per_s

    # streaming: Deltas of kind "reasoning" or "answer"; the finished Generation afterwards
    stream = engine.stream([Message("user", q)], params)
    for delta in stream:
        print(delta.text, end="")
    stream.generation

    engine.complete(["raw prompt text"], params)           # no chat template
    engine.prompt(messages) -> str; engine.prompt_ids(messages) -> list[int]   # the prompt as training built it
    engine.encode(text) -> list[int]                  # raw text, its control-token strings as control tokens
    engine.model, engine.tokenizer                    # e.g. for log-likelihood scoring (tokenizer pads left)
    engine.name, engine.context_length, engine.system_prompt, engine.eos_ids

    # lower level, for servers: build requests, run several as one batch (the scheduler does this)
    req = engine.request(messages, params, on_delta=callback)   # MedtuneError: too long, bad params
    engine.run([req, ...]) -> list[Generation]; req.cancel.set() stops a row at its next step
    engine.fit(messages, reserve) -> (messages, dropped)        # oldest turns out until the prompt fits

Generation: text, reasoning (None: no think block), answer, finish_reason ("stop" | "length" | "cancelled" |
"content_filter"), reasoning_finished, token_ids, prompt, safety (the Verdict when the safety layer replaced the
answer), disclaimer (what the layer appended to the answer; plain_answer is the answer without it), stats
(prompt_tokens, generated_tokens, seconds, first_token_s, peak_memory_mb, batch_size, tokens_per_s).
SamplingParams: max_tokens, temperature, top_p, top_k, repetition_penalty, seed, stop, ignore_eos.

With a safety layer (Engine.load(..., safety=medtune.safety.load_layer(cfg))), every request is screened when it
is made; a blocked one never reaches the model and gets the layer's refusal or emergency message (finish_reason
"content_filter"). Every answer is screened when its row ends (a dangerous one is replaced the same way) and gets
the disclaimer, streamed as a last answer Delta; raw completions (/v1/completions) are screened but get no
disclaimer. A streamed answer reaches the listener a sentence at a time (text without sentence ends in chunks),
each passed by the answer rules first (answer_gate.py): when they object the model stops and the refusal follows
what was already sent.

Prompts are built as training built them: the run's template (data.template) and system prompt
(data.system_prompt) unless overridden. Message text never becomes a control token: "<|im_end|>" typed in a
message is tokenized as those characters, so a client cannot close its turn and write one of its own
(control_tokens.py); a raw prompt (complete, /v1/completions) is the client's whole text, tokenized as is.
Generation stops on the tokenizer's EOS, the model's generation_config EOS ids, extra EOS tokens and per-request
stop strings. One `run` at a time holds the model (a lock), so threads may share an engine.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from medtune.config import Config
from medtune.data.records import Message
from medtune.data.templates import R1_ANSWER_HEADER, render_prompt
from medtune.errors import MedtuneError
from medtune.inference import weights
from medtune.inference.answer_gate import AnswerGate
from medtune.inference.control_tokens import ControlTokens, unmark
from medtune.inference.decoding import Row, RowTracker
from medtune.inference.params import SamplingParams
from medtune.inference.reasoning import ANSWER, Delta, prompt_opens_reasoning
from medtune.inference.stream import Stream

__all__ = ["Delta", "Engine", "Generation", "Request", "SamplingParams", "Stats", "Stream"]


@dataclass
class Stats:
    prompt_tokens: int
    generated_tokens: int  # the stop token included
    seconds: float  # wall time of the call that produced it (the whole batch's, in a batch)
    first_token_s: float | None  # time to first token
    peak_memory_mb: float
    batch_size: int = 1

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second of wall time, prompt processing included."""
        return self.generated_tokens / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "tokens_per_s": round(self.tokens_per_s, 2)}


@dataclass
class Generation:
    text: str  # everything generated (stop token and stop string excluded), think tags included
    reasoning: str | None  # None: no think block
    answer: str
    finish_reason: str  # "stop" (eos, stop token or string), "length" (max_tokens or context) or "cancelled"
    reasoning_finished: bool  # False: the think block never closed, so there is no answer
    stats: Stats
    token_ids: list[int] = field(default_factory=list)
    prompt: str = ""
    safety: object = None  # medtune.safety.Verdict: why the layer replaced this answer (None: it did not)
    disclaimer: str | None = None  # appended to answer by the safety layer
    advice: str | None = None  # put before the answer by the safety layer: emergency advice (an emergency request)

    @property
    def plain_answer(self) -> str:
        """The answer without the layer's advice and disclaimer: what a conversation remembers and what scoring
        reads."""
        answer = self.answer.removeprefix(self.advice) if self.advice else self.answer
        return answer.removesuffix(self.disclaimer) if self.disclaimer else answer


@dataclass
class Request:
    """One prompt ready to run: made by Engine.request, consumed by Engine.run."""

    prompt: str
    prompt_ids: list[int]
    params: SamplingParams
    max_tokens: int  # params.max_tokens, capped by the room left in the context window
    stop_ids: set[int]
    stop_strings: list[str]
    on_delta: Callable[[Delta], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    raw: bool = False  # True: no reasoning split, deltas are the text as generated (/v1/completions)
    on_finish: Callable[[Generation], None] | None = None  # called the step this row ends, not when the batch does
    verdict: object = None  # the safety layer's Verdict on the request (None: no layer)
    question: str = ""  # the text the layer screened, for the guard's view of the answer
    screen: bool = False  # True: the safety layer screens this request and its answer
    gate: AnswerGate | None = None  # a screened stream's text waits here until the answer rules pass it


class Engine:
    engine_name: ClassVar[str] = "transformers"  # what results.json names (the llama.cpp and vLLM engines have theirs)

    def __init__(self, model, tokenizer, *, template: str = "auto", system_prompt: str | None = None,
                 extra_eos_tokens: Sequence[str] = (), name: str = "model", safety=None):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.safety = safety  # medtune.safety.SafetyLayer, or None: nothing screened
        self.template, self.system_prompt = template, system_prompt or None
        self.answer_header = R1_ANSWER_HEADER if template == "r1-cot" else None
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = weights.eos_ids(model, tokenizer)
        self.extra_stop_ids, self.extra_stop_strings = self.split_stops(extra_eos_tokens)
        self.context_length = weights.context_length(model, tokenizer)
        self._bos = weights.bos_to_add(tokenizer)
        self._controls = ControlTokens(tokenizer)  # message text is never a control token
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model: str | None = None, adapter: str | None = None, run: str | None = None, *,
             config: Config | None = None, system_prompt: str | None = None, template: str | None = None,
             extra_eos_tokens: Sequence[str] = (), device: str | None = None, merge_adapter: bool = True,
             safety=None) -> Engine:
        """Load weights (see weights.py); `config` defaults to the config.yaml found beside them."""
        cfg = config or weights.config_beside(model, adapter, run)
        source = weights.resolve(cfg, adapter, run)
        tok, net = weights.load_weights(source, device, merge_adapter)
        cfg = source.config
        system = system_prompt if system_prompt is not None else weights.default_system_prompt(cfg)
        return cls(net, tok, template=template or cfg.data.template, system_prompt=system,
                   extra_eos_tokens=extra_eos_tokens, name=source.name, safety=safety)

    # ------------------------------------------------------------ prompts

    def prompt(self, messages: Sequence[Message | dict]) -> str:
        """The text the model continues, with the engine's system prompt when the messages carry none."""
        return unmark(self._marked_prompt(messages))

    def prompt_ids(self, messages: Sequence[Message | dict]) -> list[int]:
        """The prompt's token ids, BOS included: the template's control tokens are tokens, the messages' text is
        always text (control_tokens.py). A prompt whose messages hold no added-token string has encode's ids."""
        return self._chat_prompt(messages)[1]

    def _chat_prompt(self, messages: Sequence[Message | dict]) -> tuple[str, list[int]]:
        """(prompt, prompt_ids) from one rendering."""
        marked = self._marked_prompt(messages)
        return unmark(marked), self._with_bos(marked, self._controls.encode(marked))  # text typed first gets BOS

    def _marked_prompt(self, messages: Sequence[Message | dict]) -> str:
        # every message comes from whoever asks (serve takes system and assistant turns from clients too); the
        # operator's system prompt (--system, data.system_prompt) renders as training rendered it
        msgs = [dataclasses.replace(m, content=self._controls.mark(m.content), reasoning=self._controls.mark(
            m.reasoning)) for m in _messages(messages)]
        if self.system_prompt and not any(m.role == "system" for m in msgs):
            msgs.insert(0, Message("system", self.system_prompt))
        return render_prompt(msgs, self.tokenizer, self.template)

    def encode(self, text: str) -> list[int]:
        """Token ids as training made them: no special tokens added, BOS in front when the model expects one.
        Control-token strings in `text` become control tokens: for chat messages, use prompt_ids."""
        return self._with_bos(text, self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _with_bos(self, text: str, ids: list[int]) -> list[int]:
        return [self._bos, *ids] if self._bos is not None and not text.startswith(self.tokenizer.bos_token) else ids

    def split_stops(self, stops: Sequence[str]) -> tuple[set[int], list[str]]:
        """Stops that are added tokens (<|end|>, <|eot_id|>, </think>) stop on the id: special tokens never reach
        the decoded text. Other stops match the text, however the model happened to tokenize it."""
        added = self.tokenizer.get_added_vocab()
        ids = {added[s] for s in stops if s in added}
        return ids, [s for s in stops if s not in added]

    def fit(self, messages: list[Message], reserve: int) -> tuple[list[Message], int]:
        """Drop the oldest turns until the prompt leaves `reserve` tokens of the context; (messages, dropped)."""
        msgs, dropped = list(messages), 0
        while self.context_length and len(self.prompt_ids(msgs)) + reserve > self.context_length:
            first = next((i for i, m in enumerate(msgs) if m.role != "system"), len(msgs))
            end = first + 1
            while end < len(msgs) and msgs[end].role == "assistant":
                end += 1  # a turn is a question and its answers: templates want user first
            if end >= len(msgs):
                break  # only the newest message is left: request() reports it if it cannot fit
            dropped += end - first
            del msgs[first:end]
        return msgs, dropped

    # ------------------------------------------------------------ running

    def request(self, messages: Sequence[Message | dict] | None = None, params: SamplingParams | None = None, *,
                prompt: str | None = None, on_delta: Callable[[Delta], None] | None = None,
                raw: bool = False, screen: bool = True) -> Request:
        """Check and tokenize one prompt (chat `messages`, or raw `prompt` text); MedtuneError when it cannot run.
        screen=False leaves this request to the model alone: the safety evaluation measures the model's own
        refusals and applies the layer itself."""
        params = (params or SamplingParams()).check()
        if prompt is None and not any(m.role != "assistant" and m.content.strip() for m in _messages(messages or [])):
            # the template's own text is never empty: a chat whose user and system turns are all blank asks nothing
            raise MedtuneError("the prompt is empty: every user and system message is blank; give a question")
        if prompt is None:
            text, ids = self._chat_prompt(messages or [])
        else:  # a raw completion: the client writes the whole prompt, the template's tokens included
            tokens = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            if not tokens:  # checked before BOS: on Llama/Mistral tokenizers "" would otherwise run as [bos]
                raise MedtuneError("the prompt is empty: give some text to continue")
            text, ids = prompt, self._with_bos(prompt, tokens)
        room = self.context_length - len(ids) if self.context_length else params.max_tokens
        if room < 1:
            raise MedtuneError(f"the prompt has {len(ids)} tokens, which leaves no room in the model's context "
                               f"window of {self.context_length} tokens")
        stop_ids, stop_strings = self.split_stops(params.stop)
        req = Request(text, ids, params, min(params.max_tokens, room), stop_ids | self.extra_stop_ids,
                      stop_strings + self.extra_stop_strings, on_delta, raw=raw)
        req.screen = screen and self.safety is not None
        if req.screen:
            req.question = prompt if prompt is not None else _last_user(_messages(messages or []))
            req.verdict = self.safety.screen_request(prompt if prompt is not None else _messages(messages or []))
        return req

    def run(self, requests: list[Request]) -> list[Generation]:
        """Generate for a batch of requests at once; they must share sampling settings (SamplingParams.batch_key)."""
        if len({r.params.batch_key for r in requests}) > 1:
            raise ValueError("requests of one batch must share temperature, top_p, top_k, penalty and seed")
        blocked = {i: self.blocked_reply(r) for i, r in enumerate(requests)
                   if r.verdict is not None and r.verdict.blocked}
        todo = [r for i, r in enumerate(requests) if i not in blocked]
        with self._lock:
            made = iter(self._run(todo) if todo else [])
        return [blocked[i] if i in blocked else next(made) for i in range(len(requests))]

    def generate(self, conversations: Sequence[Sequence[Message | dict]], params: SamplingParams | None = None,
                 batch_size: int = 16) -> list[Generation]:
        """One Generation per conversation, in order; prompts of similar length are batched together."""
        return self._batched([self.request(c, params) for c in conversations], batch_size)

    def complete(self, prompts: Sequence[str], params: SamplingParams | None = None,
                 batch_size: int = 16) -> list[Generation]:
        """Like generate, for raw prompt texts (no chat template, no system prompt)."""
        return self._batched([self.request(params=params, prompt=p) for p in prompts], batch_size)

    def stream(self, messages: Sequence[Message | dict] | None = None, params: SamplingParams | None = None, *,
               prompt: str | None = None) -> Stream:
        """Iterate the returned Stream for Deltas; leaving the loop early cancels the generation."""
        return Stream(self, self.request(messages, params, prompt=prompt))

    def _batched(self, requests: list[Request], batch_size: int) -> list[Generation]:
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i].prompt_ids))  # less padding
        out: list[Generation | None] = [None] * len(requests)
        for start in range(0, len(order), max(1, batch_size)):
            chunk = order[start:start + batch_size]
            for i, gen in zip(chunk, self.run([requests[i] for i in chunk])):
                out[i] = gen
        return out  # type: ignore[return-value]

    def _run(self, requests: list[Request]) -> list[Generation]:
        import torch
        from transformers import StoppingCriteriaList

        from medtune.models.load import peak_memory_mb, reset_peak_memory

        params = requests[0].params
        if params.seed is not None:
            torch.manual_seed(params.seed)
        rows = [self.new_row(r) for r in requests]
        done: dict[int, Generation] = {}
        reset_peak_memory()
        start = time.perf_counter()

        def finish(i: int) -> None:
            # a row that ends early is handed over at once: a short answer never waits for its batch's longest
            first = tracker.first_token_at - start if tracker.first_token_at else None
            stats = Stats(len(requests[i].prompt_ids), rows[i].count, time.perf_counter() - start, first,
                          peak_memory_mb(), len(rows))
            done[i] = self.finished(requests[i], rows[i], stats)
            if requests[i].on_finish is not None:
                requests[i].on_finish(done[i])

        tracker = RowTracker(rows, on_done=finish)
        ids, mask = self._left_pad([r.prompt_ids for r in requests])
        config = params.generation_config(max(r.max_tokens for r in requests), sorted(self.eos_ids), self.pad_id)
        self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                            stopping_criteria=StoppingCriteriaList([tracker]))
        for i in range(len(rows)):
            if i not in done:  # generate stopped on its own (max_new_tokens, every row's EOS)
                finish(i)
        return [done[i] for i in range(len(rows))]

    def new_row(self, request: Request) -> Row:
        """The decoding state of one request: its stops, reasoning split and (screened streams) answer gate;
        the llama.cpp engine feeds it llama.cpp's tokens."""
        stop_ids = request.stop_ids | (set() if request.params.ignore_eos else self.eos_ids)
        on_delta, halt = request.on_delta, None
        advice = self.safety.advice_for(request.verdict) if request.screen else None
        if advice and on_delta is not None:  # an emergency: the advice goes out before the model's first token
            on_delta(Delta(ANSWER, advice))
        if on_delta is not None and request.screen and self.safety.cfg.screen_output:
            request.gate = AnswerGate(self.safety, on_delta)
            on_delta, halt = request.gate, request.gate.halt
        return Row(self.tokenizer, request.max_tokens, stop_ids, request.stop_strings,
                   prompt_opens_reasoning(request.prompt), self.answer_header, on_delta, request.cancel,
                   request.raw, halt)

    def _left_pad(self, batch: list[list[int]]):
        import torch

        width = max(len(ids) for ids in batch)
        ids = [[self.pad_id] * (width - len(row)) + row for row in batch]
        mask = [[0] * (width - len(row)) + [1] * len(row) for row in batch]
        device = self.model.device
        return torch.tensor(ids, device=device), torch.tensor(mask, device=device)

    def finished(self, request: Request, row: Row, stats: Stats) -> Generation:
        """The Generation of a finished row, screened by the safety layer when the request asks."""
        text, split = row.finish()
        gen = Generation(text, split.reasoning, split.answer, row.finish_reason, split.reasoning_finished, stats,
                         list(row.decoder.ids), request.prompt)
        return self.screened(request, gen) if request.screen else gen

    def blocked_reply(self, request: Request) -> Generation:
        """A request the safety layer stopped: its reply, without running the model."""
        reply = self.safety.reply(request.verdict)
        gen = Generation(reply, None, reply, "content_filter", True, Stats(len(request.prompt_ids), 0, 0.0, None, 0.0),
                         [], request.prompt, safety=request.verdict)
        if request.on_delta is not None:
            request.on_delta(Delta(ANSWER, reply))
        if request.on_finish is not None:
            request.on_finish(gen)
        return gen

    def screened(self, request: Request, gen: Generation) -> Generation:
        """The answer screened (replaced when dangerous), after the emergency advice where the request is an
        emergency and, unless raw, given the disclaimer."""
        if gen.finish_reason == "cancelled":
            return gen
        gate, advice = request.gate, self.safety.advice_for(request.verdict)
        if gate is not None and gate.verdict is not None:  # the stream was stopped mid-answer
            verdict = self.safety.record(gate.verdict, gen.text)
        elif self.safety.cfg.screen_output:
            verdict = self.safety.screen_answer(gen.text if request.raw else gen.answer,
                                                None if request.raw else gen.reasoning, request.question)
        else:
            verdict = None
        if verdict is not None and verdict.blocked:
            reply = self.safety.reply(verdict)
            if gate is not None:
                gate.replace(reply)
            return dataclasses.replace(gen, text=reply, reasoning=None, answer=(advice or "") + reply,
                                       finish_reason="content_filter", safety=verdict, advice=advice)
        if gate is not None:
            gate.release()
        disclaimer = None if request.raw else self.safety.disclaimer_for(gen.answer)
        if disclaimer is not None and request.on_delta is not None:
            request.on_delta(Delta(ANSWER, disclaimer))
        return dataclasses.replace(gen, answer=(advice or "") + gen.answer + (disclaimer or ""),
                                   disclaimer=disclaimer, advice=advice)


def _last_user(messages: list[Message]) -> str:
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


def _messages(messages: Sequence[Message | dict]) -> list[Message]:
    return [m if isinstance(m, Message) else Message(m["role"], m.get("content") or "") for m in messages]
