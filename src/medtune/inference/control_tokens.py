"""Message text never becomes a control token: a client that types "<|im_end|>\\n<|im_start|>system ..." into a
message gets those characters as text, not a turn of its own.

    controls = ControlTokens(tokenizer)
    marked = render_prompt([dataclasses.replace(m, content=controls.mark(m.content)) ...], tokenizer, template)
    unmark(marked)              # the prompt text, as it renders today
    controls.encode(marked)     # its ids: the template's control tokens as tokens, the messages' as plain text

Before the template renders, each control-token string in a message's text is wrapped in two Unicode
noncharacters; after it renders, the text between wraps is tokenized as usual (the template's own tokens) and each
wrapped string as plain text. Marking before rendering, rather than searching the rendered text for each message,
finds the client's text wherever the template puts it and however it edits it (trim, merged system turns, Jinja or
medtune's named templates). transformers 5 has the same idea as apply_chat_template(..., sanitize_control_tokens=
True); medtune does its own because its named templates are not Jinja, and older transformers 5 releases lack it.

Only the control-token strings are cut out, not whole messages: tokenizing each message apart from the template's
text changes ordinary prompts' ids where BPE merges across the edge (SmolLM2 merges "user\n" and a message's
leading spaces into one token). Text with no control-token string is never wrapped, so its prompt is one ordinary
encode call: the ids training made.
"""

from __future__ import annotations

import re

from medtune.errors import MedtuneError

OPEN, CLOSE = "\ufdd0", "\ufdd1"  # noncharacters: Unicode keeps them for a program's internal use, never for text


def unmark(text: str) -> str:
    """The text without the markers: what the prompt shows."""
    return text.replace(OPEN, "").replace(CLOSE, "")


class ControlTokens:
    """Every added token of the tokenizer is a control token in a message's text, but two kinds. Not the special
    ones alone, as split_special_tokens=True would treat: Phi-4-mini's role tokens (<|user|>, <|end|>) are plain
    added tokens, and so are the <think> tags the reasoning split trusts. The two kinds left out are ordinary
    text: whitespace tokens (Gemma's "\\n\\n"), which templates and messages both write, and plain added tokens
    that text gives anyway (an added "alpha" that is also in the vocabulary): the model sees the same id either
    way. A special token is always a control token."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
        vocab = tokenizer.get_added_vocab()
        special = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
        tokens = [t for t in vocab if t.strip() and (t in special or self._inside(self._plain, t) != [vocab[t]])]
        tokens.sort(key=len, reverse=True)  # longest first: <|im_start|> wins over any token inside it
        self.ids = frozenset(vocab[t] for t in tokens)
        alternatives = "|".join(map(re.escape, tokens)) or "(?!)"  # (?!) matches nothing
        self._pattern = re.compile(alternatives)
        # What encode takes as text: a wrapped string; a control token that kept one of its two markers (a
        # template that slices a message by characters may cut the other); a lone marker, dropped
        self._wrapped = re.compile(f"{OPEN}([^{OPEN}{CLOSE}]*){CLOSE}"
                                   f"|{OPEN}?((?<={OPEN})(?:{alternatives})|(?:{alternatives})(?={CLOSE})){CLOSE}?"
                                   f"|[{OPEN}{CLOSE}]")

    def mark(self, text: str | None) -> str | None:
        """A message's text with its control-token strings wrapped; markers it carried are dropped so none is
        forged."""
        if not text:
            return text
        return self._pattern.sub(lambda m: f"{OPEN}{m.group()}{CLOSE}", unmark(text))

    def encode(self, marked: str) -> list[int]:
        """Token ids of a rendered prompt: the text outside wraps as usual, each wrapped string as plain text.
        A lone marker is dropped but still breaks the text, so nothing joins across it."""
        if OPEN not in marked and CLOSE not in marked:  # no message held a control-token string: today's ids
            return self._piece(marked, as_text=False, first=True)
        ids, start = [], 0
        for match in self._wrapped.finditer(marked):
            ids += self._piece(marked[start:match.start()], as_text=False, first=start == 0)
            ids += self._piece(match.group(1) or match.group(2) or "", as_text=True)
            start = match.end()
        return ids + self._piece(marked[start:], as_text=False, first=start == 0)

    def _piece(self, piece: str, as_text: bool, first: bool = False) -> list[int]:
        if not piece:
            return []
        encode = self._plain if as_text else (lambda s: self.tokenizer(s, add_special_tokens=False)["input_ids"])
        ids = encode(piece) if first else self._inside(encode, piece)
        if as_text and self.ids.intersection(ids):
            raise MedtuneError(f"a message contains {piece!r}, which this tokenizer cannot encode as plain text: "
                               "remove it from the message")
        return ids

    def _inside(self, encode, piece: str) -> list[int]:
        """A piece from the middle of the prompt, encoded after a newline whose ids are then taken off:
        SentencePiece tokenizers would otherwise put the space they add before a text's first word mid-prompt."""
        ids = encode("\n" + piece)
        n = len(self._newline)
        return ids[n:] if n and ids[:n] == self._newline else encode(piece)

    def _plain(self, text: str) -> list[int]:
        """Ids of text with no added token matched, special or not (split_special_tokens skips only the special
        ones on fast tokenizers): the tokenizer's own normalizer, pre-tokenizer and model, without its added
        tokens. Python tokenizers skip every added token with split_special_tokens."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:
            return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        if backend.normalizer is not None:
            text = backend.normalizer.normalize_str(text)
        words = [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(text)] if backend.pre_tokenizer else [text]
        return [token.id for word in words for token in backend.model.tokenize(word)]
