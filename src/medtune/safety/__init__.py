"""The medical safety layer in front of every way of talking to a model.

    from medtune.safety import load_layer
    layer = load_layer(cfg)                      # None when safety.enabled is false (and a warning says so)
    verdict = layer.screen_request(messages)     # rules, then the classifier, then an optional guard endpoint
    verdict.action                               # "allow" | "refuse" | "emergency"; .category, .layer, .reason
    layer.reply(verdict)                         # the configured refusal or emergency message
    layer.screen_answer(text)                    # the same screen on what the model wrote
    layer.with_disclaimer(answer)                # the answer with the disclaimer, once

The engine (medtune.inference.engine) calls these, so generate, chat, serve, eval and the web page share them.
"""

from medtune.safety.layer import SafetyLayer, load_layer
from medtune.safety.verdict import ALLOW, EMERGENCY, REFUSE, Verdict

__all__ = ["ALLOW", "EMERGENCY", "REFUSE", "SafetyLayer", "Verdict", "load_layer"]
