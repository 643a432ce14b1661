"""An Ollama Modelfile for an exported GGUF: the chat template as a Go template, the run's system prompt, its
stop tokens and context length.

Ollama's templates are Go text/template, not Jinja, so the model's chat template (or medtune's named template) is
rendered on marker messages and cut into the text it puts between turns: before the first user turn with and
without a system prompt, between a user turn and the answer, between an answer and the next user turn. Those
pieces are assembled into a Go template, which is checked here by replaying it on other conversations against
the chat template itself; a template that cannot be written this way (one that changes earlier turns as the
conversation grows) gets no TEMPLATE line, and Ollama falls back to the chat template inside the GGUF.
"""

from __future__ import annotations

from dataclasses import dataclass

from medtune.data.records import Message
from medtune.data.templates import render_prompt
from medtune.errors import DataError
from medtune.inference.weights import bos_to_add

MARK = "\u2063mt"  # unlikely in any template: invisible separator + letters


@dataclass(frozen=True)
class Pieces:
    head: str  # before the system prompt
    system_user: str  # after the system prompt, before the first user turn
    first_user: str  # before the first user turn when there is no system prompt (may hold a default system)
    user_answer: str  # after a user turn, before the answer (the generation prompt)
    answer_user: str  # after an answer, before the next user turn


def pieces(tokenizer, template: str = "auto") -> Pieces | None:
    """The template's between-turn texts, or None when the template is not of that shape."""
    s, u1, a, u2 = (f"{MARK}{name}{MARK}" for name in ("S", "U1", "A", "U2"))
    try:
        with_system = _render(tokenizer, template, s, [u1])
        two_turns = _render(tokenizer, template, s, [u1, a, u2])
        alone = _render(tokenizer, template, None, [u1])
    except DataError:
        return None
    bos = tokenizer.bos_token if bos_to_add(tokenizer) is not None else None
    found = Pieces(
        head=_strip_bos(_between(with_system, None, s), bos),
        system_user=_between(with_system, s, u1),
        first_user=_strip_bos(_between(alone, None, u1), bos),
        user_answer=_between(with_system, u1, None),
        answer_user=_between(two_turns, a, u2),
    )
    return found if _replays(found, tokenizer, template) else None


def _render(tokenizer, template: str, system: str | None, turns: list[str]) -> str:
    messages = [Message("system", system)] if system else []
    messages += [Message("user" if i % 2 == 0 else "assistant", text) for i, text in enumerate(turns)]
    return render_prompt(messages, tokenizer, template)


def _between(text: str, start: str | None, end: str | None) -> str:
    left = text.index(start) + len(start) if start else 0
    return text[left: text.index(end, left) if end else len(text)]


def _strip_bos(text: str, bos: str | None) -> str:
    """llama.cpp adds BOS itself where the tokenizer does (the GGUF says so): the template's own would double it."""
    return text[len(bos):] if bos and text.startswith(bos) else text


def replay(p: Pieces, system: str | None, messages: list[tuple[str, str]]) -> str:
    """What the Go template of go_template(p) renders, in Python: the self-check's reference."""
    out, prev = "", ""
    if system:
        out, prev = p.head + system, "system"
    for role, content in messages:
        if role == "user":
            out += {"assistant": p.answer_user, "system": p.system_user}.get(prev, p.first_user) + content
        elif role == "assistant":
            out += p.user_answer + content
        prev = role if role in ("user", "assistant") else prev
    return out + (p.user_answer if prev != "assistant" else "")


def _replays(p: Pieces, tokenizer, template: str) -> bool:
    """The pieces, replayed on other conversations, give exactly what the chat template gives."""
    cases = [("You are careful.", ["Is aspirin safe?"]),
             ("You are careful.", ["Is aspirin safe?", "Usually.", "And in pregnancy?", "Avoid it late.", "Why?"]),
             (None, ["Is aspirin safe?", "Usually.", "And in pregnancy?"])]
    bos = tokenizer.bos_token if bos_to_add(tokenizer) is not None else None
    for system, turns in cases:
        roles = [("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(turns)]
        if _strip_bos(_render(tokenizer, template, system, turns), bos) != replay(p, system, roles):
            return False
    return True


def go_template(p: Pieces) -> str:
    """The pieces as an Ollama TEMPLATE: system from .System, turns from .Messages, the generation prompt last."""
    q = _go_literal
    return (
        '{{ $prev := "" }}'
        f'{{{{ if .System }}}}{q(p.head)}{{{{ .System }}}}{{{{ $prev = "system" }}}}{{{{ end }}}}'
        '{{ range .Messages }}'
        '{{ if eq .Role "user" }}'
        f'{{{{ if eq $prev "assistant" }}}}{q(p.answer_user)}{{{{ else if eq $prev "system" }}}}{q(p.system_user)}'
        f'{{{{ else }}}}{q(p.first_user)}{{{{ end }}}}{{{{ .Content }}}}{{{{ $prev = "user" }}}}'
        f'{{{{ else if eq .Role "assistant" }}}}{q(p.user_answer)}{{{{ .Content }}}}{{{{ $prev = "assistant" }}}}'
        '{{ end }}{{ end }}'
        f'{{{{ if ne $prev "assistant" }}}}{q(p.user_answer)}{{{{ end }}}}'
    )


def _go_literal(text: str) -> str:
    """Template text as it must appear: braces that would open an action are printed by an action."""
    return text.replace("{{", '{{ "{{" }}') if "{{" in text else text


def modelfile(gguf_name: str, p: Pieces | None, system: str | None, stops: list[str], context: int | None) -> str:
    lines = ["# written by medtune export; use it: ollama create NAME -f Modelfile", f"FROM ./{gguf_name}"]
    template = go_template(p) if p is not None else None
    if template is None or '"""' in template:
        lines += ["# no TEMPLATE: the run's chat template cannot be written as an Ollama template (a one-turn",
                  "# template, or one that rewrites earlier turns); Ollama then uses the chat template in the GGUF"]
    else:
        lines.append(f'TEMPLATE """{template}"""')
    if system and '"""' not in system:
        lines.append(f'SYSTEM """{system}"""')  # the system prompt training used: the model knows no other
    elif system:
        lines.append(f'SYSTEM "{_quoted(" ".join(system.split()))}"')  # a triple quote would end the block
    lines += [f'PARAMETER stop "{_quoted(s)}"' for s in stops]
    if context:
        lines.append(f"PARAMETER num_ctx {context}")
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
