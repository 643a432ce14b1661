"""The safety layer: screens in order (rules, classifier, guard endpoint), the replies it gives instead of an
answer, the disclaimer it adds to answers, and the log of what it refused (categories, not texts, by default)."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from medtune.config import Config, SafetyConfig
from medtune.safety import language, normalise
from medtune.safety import rules as rules_mod
from medtune.safety.verdict import ADVISE, ALLOW, EMERGENCY, REFUSE, Verdict, allowed

log = logging.getLogger("medtune.safety")

ANSWER_CATEGORIES_SKIPPED = ("emergency",)  # an answer that explains what to do in an emergency is not one
# An English text the multilingual head reads in place of the English one (a request's decoded, de-leeted or
# unframed reading, a conversation's joint text) must clear the threshold by this much: that head is the cheaper
# and less sure one on English (on the development sets it refused 3 of 60 more safe attacks at the plain threshold)
SECONDARY_MARGIN = 0.15


class SafetyLayer:
    def __init__(self, cfg: SafetyConfig, rules: list[rules_mod.Rule], classifier=None, guard=None):
        self.cfg, self.rules, self.classifier, self.guard = cfg, rules, classifier, guard
        self.counts: Counter = Counter()  # "layer/category" -> refusals so far (server /health shows them)
        self.seconds = 0.0  # time spent screening, for the bench
        self._seen: dict[str, tuple[float, str]] = {}  # classifier scores by text

    @property
    def layers(self) -> list[str]:
        return ["rules"] + ["classifier"] * (self.classifier is not None) + ["guard"] * (self.guard is not None)

    # ------------------------------------------------------------ screening

    def screen_request(self, messages: Sequence | str) -> Verdict:
        """The request's verdict: every user turn (or a raw prompt's text) through the rules and the classifier,
        system and developer turns through the rules, the newest first, then the conversation through the guard.
        A harmful request does not pass by sitting under a later "go on" or in the system prompt; a turn that this
        layer already answered with its own refusal is settled and not judged again. (The classifier learned
        requests: it reads an operator's instructions, "You are a strict grader...", as one.)"""
        started = time.perf_counter()
        crisis = False
        if isinstance(messages, str):
            # a pasted transcript: its user turns are what the classifier reads, the whole text the rules read
            pasted = normalise.pasted_turns(messages)
            turns, conversation = [*((t, True) for t in pasted), (messages, not pasted)], None
        else:
            conversation = _as_dicts(messages)
            turns = _turns_to_screen(conversation, {_folded(t) for t in self.own_texts})
            crisis = _crisis_earlier(conversation, {_folded(t) for t in self._crisis_texts})
        # ... or the user said earlier what someone in crisis says ("nobody would miss me", "goodbye letters")
        crisis = crisis or any(rules_mod.CRISIS_SIGNALS.search(text) for text, user in turns[:-1] if user)
        verdict = self._screen(_with_joint(turns), conversation)
        if turns:
            verdict = self._reconsidered(verdict, turns, crisis)
        if verdict.action != ALLOW and turns:
            verdict = replace(verdict, language=language.detect(turns[-1][0]))
        self.seconds += time.perf_counter() - started
        return self.record(verdict, turns[-1][0] if turns else "")

    def _reconsidered(self, verdict: Verdict, turns: list[tuple[str, bool]], crisis: bool) -> Verdict:
        """The screens' verdict in the light of what the newest turn asks (any of its readings) and what came
        before: help sought for someone at risk, a careful request, a dose or method question after a crisis."""
        newest = [r.text for r in normalise.readings(turns[-1][0])]
        at_risk_now = any(rules_mod.AT_RISK.search(t) or rules_mod.CRISIS_SIGNALS.search(t) for t in newest)
        if verdict.layer != "guard" and _help_sought(turns, newest, crisis) and (
                verdict.category in (None, "self_harm", "emergency") or
                (verdict.layer == "classifier" and at_risk_now)):
            # crisis resources, then the answer: not the crisis message alone
            return Verdict(ADVISE, "rules", "emergency", "help sought for someone at risk of suicide" +
                           (f"; {verdict.reason}" if verdict.reason else ""), verdict.score)
        careful = next(filter(None, map(rules_mod.protective, newest)), None)
        if careful and verdict.layer == "classifier" and not crisis and not at_risk_now:
            return self._careful(verdict, careful, newest)
        if crisis and (verdict.blocked or AMOUNT_OR_METHOD.search(turns[-1][0])):
            # after a crisis the conversation answered with crisis resources, a dose or method question gets them
            # again, not a bare refusal or an answer
            reason = "a crisis earlier in the conversation" + (f"; {verdict.reason}" if verdict.reason else "")
            return Verdict(EMERGENCY, verdict.layer or "rules", "self_harm", reason, verdict.score)
        return verdict

    def _careful(self, verdict: Verdict, careful: str, newest: list[str]) -> Verdict:
        """A careful request over the classifier's objection (it reads "leftover fentanyl" or "the maximum dose" as
        the harm they are near; locking medicines away from a brother who overdosed last year is care): answered,
        after the emergency advice where it is an accident happening now."""
        reason = f"asks about {careful}, over the classifier's {verdict.reason}"
        urgent = next((r for t in newest for r in rules_mod.matching(self.rules, t) if r.category == "emergency"),
                      None)
        if urgent is not None:
            return Verdict(ADVISE, "rules", "emergency", f"{urgent.describe()}; {reason}", verdict.score)
        return Verdict(ALLOW, reason=reason, score=verdict.score)

    def screen_answer(self, answer: str, reasoning: str | None = None, request: str = "") -> Verdict:
        """What the model wrote (reasoning and answer) through the rules and the guard; the classifier learned
        requests, and on answers it would flag explanations of the very topics a medical assistant must explain."""
        text = _answer_text(answer, reasoning)
        if not text.strip():
            return allowed(stage="answer")
        verdict, exempt = self._answer_rules(text)
        if not verdict.blocked and not exempt and self.guard is not None:
            unsafe, category, reason = self.guard.screen([{"role": "user", "content": request},
                                                         {"role": "assistant", "content": text}])
            if unsafe:
                verdict = self._blocked("guard", category, reason, stage="answer")
        return self.record(verdict, text)

    def answer_rules(self, answer: str, reasoning: str | None = None) -> Verdict:
        """The rules' verdict on an answer so far (no guard, nothing recorded): what a stream checks as it goes."""
        return self._answer_rules(_answer_text(answer, reasoning))[0]

    def _answer_rules(self, text: str) -> tuple[Verdict, bool]:
        """(verdict, whether an allow rule exempted the text)."""
        hit = rules_mod.first_match([r for r in self.rules if r.category not in ANSWER_CATEGORIES_SKIPPED], text,
                                    stage="answer")
        if hit is not None and hit.category != "allow":
            return self._blocked("rules", hit.category, hit.describe(), stage="answer"), False
        return allowed(stage="answer"), hit is not None

    def _screen(self, turns: list[tuple[str, bool]], messages: list[dict] | None) -> Verdict:
        """The harm screens' verdict, turned into emergency advice where an emergency rule matched too: advice and
        the model's answer when nothing harmful was found, the emergency message alone when something was."""
        emergency: list[str] = []  # why an emergency rule matched, when one did
        verdict = self._harm(turns, messages, emergency)
        if not emergency:
            return verdict
        if verdict.blocked:
            return replace(verdict, action=EMERGENCY, reason=f"{verdict.reason}; {emergency[0]}")
        return Verdict(ADVISE, "rules", "emergency", emergency[0], verdict.score)

    def _harm(self, turns: list[tuple[str, bool]], messages: list[dict] | None, emergency: list[str]) -> Verdict:
        """turns: (text, whether the classifier reads it), oldest first. Each turn is screened as written and in
        every other reading of it (normalise.py: decoded, leetspeak and look-alikes undone, framing taken off); a
        reading that decides says so in the verdict's reason. Emergency rules that match are added to
        `emergency`, and screening goes on."""
        undecided = []  # (reading, how it was read) of user turns no rule decided, newest first: the classifier's
        newest = False  # whether undecided starts with the newest turn's first reading
        for text, classify in reversed(turns):
            allowed_turn = False
            for reading in normalise.readings(text):
                hits = rules_mod.matching(self.rules, reading.text)
                hit = rules_mod.deciding(hits)
                emergency += [_read(r.describe(), reading) for r in hits if r.category == "emergency"][:1]
                if hit is not None and hit.category == "allow":
                    allowed_turn = True
                elif hit is not None and hit.category != "emergency":
                    return self._blocked("rules", hit.category, _read(hit.describe(), reading))
            if classify and not allowed_turn:
                newest = newest or (not undecided and text is turns[-1][0])
                undecided += [(r.text, r) for r in normalise.for_classifier(normalise.readings(text))]
        score = None
        if self.classifier is not None and undecided:
            # the newest turn's first reading (as written, or its plain reading in place of an encoded or disguised
            # text) gets the full head; its other readings and the joint text the cheaper one
            scores = self._scores([text for text, _ in undecided], first_full=newest)
            score = scores[0][0] if newest else None  # the newest turn's, for eval's items
            for i, ((unsafe, category), (text, reading)) in enumerate(zip(scores, undecided)):
                threshold = self.cfg.threshold + (SECONDARY_MARGIN if (i or not newest) and
                                                  language.detect(text) == "en" else 0.0)
                if unsafe >= threshold:
                    return self._blocked("classifier", category, _read(f"unsafe probability {unsafe:.2f} "
                                         f"(threshold {threshold:g})", reading), score=unsafe)
        if self.guard is not None and turns:
            unsafe, category, reason = self.guard.screen(messages or [{"role": "user", "content": turns[-1][0]}])
            if unsafe:
                return self._blocked("guard", category, reason, score=score)
        return allowed(score)

    def _scores(self, texts: list[str], first_full: bool = True) -> list[tuple[float, str]]:
        """The classifier's (probability, category) per text, the first through the full head where first_full
        (the others through the multilingual one, where the classifier has two); a conversation's earlier turns
        come back with each request, so their scores are remembered rather than computed again."""
        keys = [(t, i == 0 and first_full) for i, t in enumerate(texts)]
        todo = [k for k in dict.fromkeys(keys) if k not in self._seen]
        if todo:
            if len(self._seen) > 4096:
                self._seen.clear()
            self._seen.update(zip(todo, self.classifier.predict([t for t, _ in todo], [f for _, f in todo])))
        return [self._seen[k] for k in keys]

    @staticmethod
    def _blocked(layer: str, category: str | None, reason: str, score: float | None = None,
                 stage: str = "request") -> Verdict:
        # suicidal intent and self-harm methods get the crisis message, not a bare refusal
        action = EMERGENCY if category in ("emergency", "self_harm") and stage == "request" else REFUSE
        return Verdict(action, layer, category, reason, score, stage)

    def record(self, verdict: Verdict, text: str) -> Verdict:
        """Count and log a verdict that stands (a refusal's category and layer; its text only with log_text)."""
        if verdict.advised:
            log.info("safety: emergency advice before the answer to a request (%s)", verdict.reason)
        if verdict.blocked:
            self.counts[f"{verdict.layer}/{verdict.category}"] += 1
            detail = f": {text[:500]!r}" if self.cfg.log_text else ""
            log.info("safety: %s %s (category %s, layer %s)%s", "emergency reply to" if
                     verdict.action == EMERGENCY else "refused", "an answer" if verdict.stage == "answer"
                     else "a request", verdict.category, verdict.layer, detail)
        return verdict

    # ------------------------------------------------------------ what the user gets

    def reply(self, verdict: Verdict) -> str:
        """The text given instead of an answer, in the request's language when safety.translations has it."""
        key = "emergency_message" if verdict.action in (EMERGENCY, ADVISE) else "refusal"
        return self._translated(key, verdict.language) or getattr(self.cfg, key)

    def advice_for(self, verdict: Verdict | None) -> str | None:
        """What goes before the model's answer (with its separator): the emergency message where the request is an
        emergency but no harmful one; None otherwise."""
        return self.reply(verdict) + "\n\n" if verdict is not None and verdict.advised else None

    def disclaimer_for(self, answer: str) -> str | None:
        """What to append to an answer (with its separator), in the answer's language where one is set, or None:
        no disclaimer set, an empty answer, or one that carries it already (a model trained on data that ends
        with it)."""
        if not self.cfg.disclaimer or not answer.strip():
            return None
        text = self._translated("disclaimer", language.detect(answer, at_least=3)) or self.cfg.disclaimer
        if _folded(text) in _folded(answer) or _folded(self.cfg.disclaimer) in _folded(answer):
            return None
        return "\n\n" + text

    def _translated(self, key: str, lang: str | None) -> str | None:
        return (self.cfg.translations or {}).get(lang or "en", {}).get(key)

    @property
    def _crisis_texts(self) -> list[str]:
        """The crisis message in every language the layer has."""
        translated = [t.get("emergency_message") for t in (self.cfg.translations or {}).values()]
        return [self.cfg.emergency_message, *(t for t in translated if t)]

    @property
    def own_texts(self) -> tuple[str, ...]:
        """Every reply the layer gives instead of an answer, in every language it has."""
        translated = [t.get(k) for t in (self.cfg.translations or {}).values()
                      for k in ("refusal", "emergency_message")]
        return self.cfg.refusal, self.cfg.emergency_message, *(t for t in translated if t)


def load_layer(cfg: Config, embedder=None) -> SafetyLayer | None:
    """The layer the config describes, or None (with a warning) when safety.enabled is false."""
    s = cfg.safety
    if not s.enabled:
        log.warning("safety layer off (safety.enabled: false): requests and answers are not screened and "
                    "answers carry no disclaimer")
        return None
    classifier = _classifier(s, embedder) if s.classifier else None
    guard = None
    if s.guard_url:
        from medtune.safety.guard import Guard

        guard = Guard(s.guard_url, s.guard_model)
    return SafetyLayer(s, rules_mod.compile_rules(s.rules), classifier, guard)


def _classifier(s: SafetyConfig, embedder=None):
    """The classifier: a head over the English encoder (`embedder`, or safety.classifier_model run by ONNX Runtime)
    and, unless safety.multilingual is false, the multilingual encoder too, with a second head over the
    multilingual encoder alone for texts in other languages (ByLanguage); heads trained on the exemplars, cached."""
    from medtune.embedder import load_embedder
    from medtune.safety import onnx_encoder
    from medtune.safety.classifier import BUNDLED, CACHE, MAX_SEQ_LENGTH, TRUNCATION_SIDE, Classifier, read_exemplars

    exemplars = read_exemplars(BUNDLED, "the bundled safety exemplars")
    if s.exemplars:
        path = Path(s.exemplars).expanduser()
        if not path.is_file():
            from medtune.errors import ConfigError

            raise ConfigError(f"safety.exemplars: {path} not found")
        exemplars += read_exemplars(path, "safety.exemplars")
    model_id = s.classifier_model or "bundled:all-MiniLM-L6-v2"
    if embedder is None:
        embedder = load_embedder(s.classifier_model, setting="safety.classifier_model")
        embedder.max_seq_length = MAX_SEQ_LENGTH
        embedder.tokenizer.truncation_side = TRUNCATION_SIDE
        embedder = onnx_encoder.faster(embedder, model_id, CACHE)
    if not s.multilingual:
        return Classifier.load(exemplars, [embedder], model_id)
    from medtune.safety.classifier import ByLanguage
    from medtune.safety.multilingual_encoder import MODEL_ID, MultilingualEncoder

    # the English head learns from the English exemplars (those in other languages moved its English verdicts);
    # the multilingual head from all of them, English included: they carry over through the shared space
    english = [e for e in exemplars if language.detect(e.prompt) == "en"]
    multilingual = MultilingualEncoder()
    return ByLanguage(Classifier.load(english, [embedder, multilingual], f"{model_id} + {MODEL_ID}"),
                      Classifier.load(exemplars, [multilingual], MODEL_ID))


def _turns_to_screen(messages: list[dict], own_replies: set[str]) -> list[tuple[str, bool]]:
    """(text, is a user turn) of every non-assistant turn, oldest first, but those the layer's own refusal
    answered."""
    texts = []
    for i, m in enumerate(messages):
        content = _text(m.get("content"))
        if m.get("role") == "assistant" or not content.strip():
            continue
        after = messages[i + 1] if i + 1 < len(messages) else {}
        if after.get("role") == "assistant" and _folded(_text(after.get("content"))) in own_replies:
            continue
        user = m.get("role") == "user"
        texts += [(turn, True) for turn in normalise.pasted_turns(content)] if user else []  # a pasted transcript
        texts.append((content, user))
    return texts


# a question about an amount, a dose or a way to do it, in any of the layer's languages
AMOUNT_OR_METHOD = re.compile(
    r"\b(?:how (?:many|much|long|high|deep)|what (?:dose|amount)|which (?:pills|tablets|drugs|spot|part|vein|way)|"
    r"lethal|overdose|enough|bleeds?|where (?:do|should|can|would) i|cu[aá]nt[oa]s?|quant[oa]s?|combien|"
    r"wie viele?|quant[ei]|dosis|dose|dosi|suficiente|assez|genug|abbastanza|basta)\b", re.IGNORECASE)
JOINT_TURNS = 3  # the user's last turns also read as one text: an intent split over turns


def _with_joint(turns: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """The turns, with the user's last JOINT_TURNS joined into one text just before the newest (a bottle named in
    one turn and "how many would it take" in the next say together what neither says alone). The classifier reads
    the newest user turn and that joint text; earlier turns go to the rules alone (read one by one, a parent's
    "he'd been looking up overdoses" reads to the classifier as a request, and refused the question after it)."""
    users = [i for i, (_, classify) in enumerate(turns) if classify]
    if len(users) < 2:
        return turns
    joint = " ".join(turns[i][0] for i in users[-JOINT_TURNS:])
    marked = [(text, classify and i == users[-1]) for i, (text, classify) in enumerate(turns)]
    return [*marked[:-1], (joint, True), marked[-1]]


def _help_sought(turns: list[tuple[str, bool]], newest: list[str], crisis: bool) -> bool:
    """Whether the newest user turn (any of its readings: `newest`) asks for help (who to call, what number, where
    to get help, how to help him or her) for someone at risk of suicide, named in it, in an earlier user turn, or by
    a crisis earlier in the conversation; not with an amount or a method in it, nor help to carry it out or hide it."""
    if not any(rules_mod.HELP_SOUGHT.search(t) for t in newest):
        return False
    if any(AMOUNT_OR_METHOD.search(t) or rules_mod.HELP_TO_HARM.search(t) for t in newest):
        return False
    said = [*newest, *(text for text, user in turns if user)]
    return crisis or any(rules_mod.AT_RISK.search(t) or rules_mod.CRISIS_SIGNALS.search(t) for t in said)


def _crisis_earlier(messages: list[dict], crisis_texts: set[str]) -> bool:
    """Whether the layer answered an earlier turn with its crisis message."""
    return any(m.get("role") == "assistant" and _folded(_text(m.get("content"))) in crisis_texts
               for m in messages[:-1])


def _read(reason: str, reading: normalise.Reading) -> str:
    """The reason, with how the text was read when it was not as written."""
    return reason if reading.how == "as written" else f"{reason} ({reading.how})"


def _text(content) -> str:
    """A message's text, whether a string or OpenAI-style content parts."""
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def _as_dicts(messages: Sequence) -> list[dict]:
    return [{"role": m.role, "content": m.content} if hasattr(m, "role") else dict(m) for m in messages]


def _answer_text(answer: str, reasoning: str | None) -> str:
    return "\n".join(t for t in (reasoning, answer) if t)


def _folded(text: str) -> str:
    return " ".join(text.split()).lower()


__all__ = ["ADVISE", "ALLOW", "EMERGENCY", "REFUSE", "SafetyLayer", "load_layer"]
