"""The web chat page (`medtune ui`) on the same engine as generate, chat and serve.

    turns    one question and its answer as Gradio chat messages, from the engine's Deltas (pure functions)
    streams  several engine streams read as one (side-by-side answers)
    settings the sampling sliders: the config fields they set, checked by config.RANGES and the slider's span
    page     the Gradio Blocks and their handlers (imports gradio: pip install 'medtune[ui]')
"""
