"""The web chat page (Gradio Blocks) on the shared engine: one chat column per engine, answers streamed together.

    page = ChatPage([engine], params, labels=["quickstart"]).build()   # a second engine: side by side
    page.launch(server_name="127.0.0.1", server_port=7860)
"""

from __future__ import annotations

import dataclasses
import logging

import gradio as gr

from medtune.data.records import Message
from medtune.inference.reasoning import Delta
from medtune.ui.settings import page_settings
from medtune.ui.streams import Together
from medtune.ui.turns import Exchange, add, fail, finish, history, render, status_line

log = logging.getLogger(__name__)


class ChatPage:
    """The page's handlers: a question to every engine, Stop, a new conversation, reasoning shown or hidden."""

    def __init__(self, engines: list, params, labels: list[str] | None = None):
        self.engines, self.params = engines, params
        self.labels = labels or [e.name for e in engines]
        context = min(e.context_length or params.max_tokens for e in engines)
        self.temperature, self.max_tokens = page_settings(context, params.max_tokens)
        self._running: dict[str, Together] = {}  # browser session -> its answers in progress, for Stop

    # ------------------------------------------------------------ handlers

    def respond(self, question: str, temperature: float, max_tokens: float, show_reasoning: bool, system: str,
                sides: list[list[Exchange]], request: gr.Request):
        """Stream one answer per engine into its column; yields (chatbots..., sides, status, question box).
        gr.Error naming the field and its range for a setting outside it (the page's API takes any value)."""
        try:
            temperature, max_tokens = self.temperature.check(temperature), self.max_tokens.check(max_tokens)
        except ValueError as error:
            raise gr.Error(str(error), print_exception=False) from None
        question = (question or "").strip()
        if not question:
            yield self._view(sides, show_reasoning, "Type a question first.")
            return
        asked = [Exchange(question) for _ in self.engines]
        sides = [[*side, ex] for side, ex in zip(sides, asked)]
        streams = self._streams(sides, asked, temperature, max_tokens, system)
        together = Together([stream for _, stream in streams])
        self._running[_session(request)] = together
        try:
            yield self._view(sides, show_reasoning, "Generating…")
            for index, item in together:
                _apply(asked[streams[index][0]], item)
                yield self._view(sides, show_reasoning)
        finally:
            together.cancel()  # the page was closed mid-answer: free the models
            self._running.pop(_session(request), None)
        yield self._view(sides, show_reasoning)

    def stop(self, request: gr.Request) -> None:
        together = self._running.get(_session(request))
        if together is not None:
            together.cancel()  # respond() then shows what was made, marked as stopped

    def new_conversation(self, request: gr.Request):
        self.stop(request)  # the answer in progress is dropped, not shown (its event is cancelled too)
        sides = [[] for _ in self.engines]
        return self._view(sides, True, "Ready.")

    def rerender(self, sides: list[list[Exchange]], show_reasoning: bool) -> tuple:
        """The columns again, with the reasoning shown or hidden; (chatbots..., status)."""
        return (*(render(side, show_reasoning) for side in sides), status_line(sides))

    # ------------------------------------------------------------ parts

    def _streams(self, sides, asked, temperature, max_tokens, system) -> list[tuple[int, object]]:
        """(side, Stream) for each engine that accepted the request; the others show their error at once."""
        out = []
        for i, (engine, side, ex) in enumerate(zip(self.engines, sides, asked)):
            try:
                params = dataclasses.replace(self.params, temperature=temperature, max_tokens=max_tokens).check()
                messages, ex.dropped = engine.fit(_prompt(side[:-1], ex.question, system), _reserve(engine, params))
                out.append((i, engine.stream(messages, params)))
            except Exception as error:  # too long, a one-turn template asked twice
                fail(ex, error)
        return out

    def _view(self, sides, show_reasoning: bool, status: str | None = None) -> tuple:
        chats = [render(side, show_reasoning) for side in sides]
        return (*chats, sides, status or status_line(sides), "")

    # ------------------------------------------------------------ layout

    def build(self) -> gr.Blocks:
        with gr.Blocks(title=f"medtune · {' vs '.join(self.labels)}", analytics_enabled=False) as page:
            gr.Markdown(self._header(), elem_id="header")
            with gr.Row():
                chats = [gr.Chatbot(label=label, elem_id=f"answers-{i}", height=520, buttons=["copy"])
                         for i, label in enumerate(self.labels)]
            status = gr.Markdown("Ready.", elem_id="status")
            with gr.Row():
                question = gr.Textbox(placeholder="Ask a medical question", show_label=False, scale=4,
                                      elem_id="question", autofocus=True)
                send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                stop = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
                new = gr.Button("New conversation", scale=1, min_width=180, elem_id="new")
            settings = self._settings()
            sides = gr.State([[] for _ in self.engines])
            outputs = [*chats, sides, status, question]
            # preprocess off: respond checks the settings itself, naming the field (Gradio's own bounds check
            # names none, and a value of the wrong type is a traceback)
            answer = gr.on([question.submit, send.click], self.respond, [question, *settings, sides], outputs,
                           show_progress="hidden", preprocess=False)
            stop.click(self.stop, None, None, queue=False)
            for trigger in [new.click, *(chat.clear for chat in chats)]:  # a chat's own bin clears both columns
                trigger(self.new_conversation, None, outputs, cancels=[answer], queue=False)
            settings[2].change(self.rerender, [sides, settings[2]], [*chats, status], queue=False)
        return page

    def _settings(self) -> list:
        """temperature, max tokens, reasoning shown, system prompt: the inputs of respond, in that order."""
        t, m = self.temperature, self.max_tokens
        with gr.Accordion("Settings", open=False, elem_id="settings"):
            with gr.Row():
                temperature = gr.Slider(t.minimum, t.maximum, value=self.params.temperature, step=0.05,
                                        label=f"{t.label} (0: greedy)")
                max_tokens = gr.Slider(m.minimum, m.maximum, value=self.params.max_tokens, step=1, label=m.label)
                reasoning = gr.Checkbox(True, label="Show the reasoning", elem_id="show-reasoning")
            own = self.engines[0].system_prompt
            system = gr.Textbox(label="System prompt (blank: each model's own)", lines=2,
                                placeholder=own or "(none)", elem_id="system")
        return [temperature, max_tokens, reasoning, system]

    def _header(self) -> str:
        lines = ["## medtune"]
        for label, engine in zip(self.labels, self.engines):
            screened = f"safety layer: {', '.join(engine.safety.layers)}" if engine.safety else "safety layer OFF"
            lines.append(f"**{label}** ({screened})  ")
        return "\n".join(lines)


def _apply(ex: Exchange, item) -> None:
    """One event of a side's stream onto its exchange: a Delta, the Generation, or the exception that ended it."""
    if isinstance(item, Delta):
        add(ex, item)
    elif isinstance(item, BaseException):
        log.warning("generation failed: %s", item)
        fail(ex, item)
    else:
        finish(ex, item)


def _prompt(past: list[Exchange], question: str, system: str | None) -> list[Message]:
    """The conversation so far and the new question; a system prompt typed on the page replaces the model's own."""
    lead = [Message("system", system.strip())] if system and system.strip() else []
    return [*lead, *history(past), Message("user", question)]


def _reserve(engine, params) -> int:
    """Room kept for the answer when old turns are dropped (as chat keeps it)."""
    return min(params.max_tokens, (engine.context_length or params.max_tokens) // 2)


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or ""
