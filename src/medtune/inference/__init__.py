"""Using a model: the one engine (engine.py) and the verbs on it: generate.py, chat.py, server.py."""
