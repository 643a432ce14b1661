"""The medical safety layer in front of every way of talking to a model.

    from medtune.safety import load_layer
    layer = load_layer(cfg)                      # None when safety.enabled is false (and a warning says so)
    verdict = layer.screen_request(messages)     # rules, then the classifier, then an optional guard endpoint
    verdict.action                               # "allow" | "refuse" | "emergency" | "advise" (advice, then the
                                                 # model's answer); .category, .layer, .reason
    layer.reply(verdict)                         # the configured refusal or emergency message
    layer.screen_answer(text)                    # what the model wrote: the rules, then the guard (no classifier)
    layer.disclaimer_for(answer)                 # what to append to the answer, or None (none set, or already there)

The engine (medtune.inference.engine) calls these, so generate, chat, serve, eval and the web page share them.

    layer.py         SafetyLayer and load_layer: the screens in order, the replies, the disclaimer, the refusal log
    verdict.py       Verdict (what a screen decided and why) and the categories every screen reports in
    rules.py         the first screen: readable patterns per category, for requests and for answers
    classifier.py    the second screen: a small classifier over sentence embeddings, trained offline, cached
    onnx_encoder.py  that classifier's sentence encoder run by ONNX Runtime on CPU
    multilingual_encoder.py  its multilingual encoder (USE multilingual v3 in numpy): other languages by meaning
    guard.py         the optional third screen: a guard model (Llama Guard) behind an OpenAI-compatible endpoint
    refusals.py      did a model refuse? a reading of its final text, for the safety evaluation
"""

from medtune.safety.layer import SafetyLayer, load_layer
from medtune.safety.verdict import ALLOW, EMERGENCY, REFUSE, Verdict

__all__ = ["ALLOW", "EMERGENCY", "REFUSE", "SafetyLayer", "Verdict", "load_layer"]
