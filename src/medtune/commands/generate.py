"""`medtune generate`: one prompt, one answer, with the reasoning set apart and a statistics line.

    medtune generate --run runs/phi4-med --prompt "A 45-year-old presents with ..."
    medtune generate --model microsoft/Phi-4-mini-instruct --adapter runs/x/adapter "question" --stream
    echo "question" | medtune generate --run runs/x --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medtune.commands.args import (
    add_engine_argument,
    add_model_arguments,
    add_sampling_arguments,
    engine_config,
    load_engine,
    sampling_params,
    split_items,
)
from medtune.data.records import Message
from medtune.data.sources import decode_utf8
from medtune.errors import MedtuneError
from medtune.inference.display import Printer, stats_line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    add_model_arguments(parser, text="PROMPT")
    source = parser.add_argument_group("prompt (or a positional argument, or standard input)")
    source.add_argument("--prompt", "-p", help="the question")
    source.add_argument("--prompt-file", help="read the question from this file")
    add_sampling_arguments(parser)
    add_engine_argument(parser)
    output = parser.add_argument_group("output").add_mutually_exclusive_group()
    output.add_argument("--stream", action="store_true", help="print tokens as they are generated")
    output.add_argument("--json", action="store_true",
                        help="print one JSON object: reasoning, answer, finish_reason, stats")
    parser.add_argument("--hide-reasoning", action="store_true", help="print the answer only")


def main(args: argparse.Namespace) -> int:
    question = read_prompt(args, one_prompt(args.items))
    cfg = engine_config(args, allow_text=True)
    params = sampling_params(cfg)  # bad values fail before the model loads
    engine = load_engine(args, cfg, args.engine)
    messages = [Message("user", question)]
    if args.json:
        gen = engine.generate([messages], params)[0]
        print(json.dumps(as_json(gen, engine.name, args.hide_reasoning), ensure_ascii=False))
        return 0
    printer = Printer(sys.stdout, show_reasoning=not args.hide_reasoning)
    gen = _stream(engine, messages, params, printer) if args.stream else engine.generate([messages], params)[0]
    if not args.stream:
        printer.generation(gen)
    print(stats_line(gen), file=sys.stderr)
    return 0


def _stream(engine, messages, params, printer: Printer):
    stream = engine.stream(messages, params)
    for delta in stream:
        printer.delta(delta)
    printer.end(stream.generation)
    return stream.generation


def one_prompt(items: list[str]) -> str | None:
    """The positional prompt, if any: what is neither the config file nor a key=value override."""
    text = split_items(items, allow_text=True).text
    if len(text) > 1:
        raise MedtuneError(f"more than one prompt given ({len(text)} positional arguments): quote the prompt")
    return text[0] if text else None


def read_prompt(args: argparse.Namespace, positional: str | None) -> str:
    given = [p for p in (args.prompt, positional) if p is not None] + ([args.prompt_file] if args.prompt_file else [])
    if len(given) > 1:
        raise MedtuneError("give the prompt once: --prompt, --prompt-file or a positional argument")
    if args.prompt_file:
        path = Path(args.prompt_file)
        if not path.is_file():
            raise MedtuneError(f"{path}: prompt file not found")
        text = decode_utf8(path.read_bytes(), str(path))
    elif given:
        text = given[0]
    elif not sys.stdin.isatty():
        text = decode_utf8(sys.stdin.buffer.read(), "standard input")
    else:
        raise MedtuneError("no prompt: give --prompt TEXT, --prompt-file FILE, or pipe it on standard input")
    if not text.strip():
        raise MedtuneError("the prompt is empty")
    return text.strip()


def as_json(gen, model: str, hide_reasoning: bool = False) -> dict:
    return {"model": model, "reasoning": None if hide_reasoning else gen.reasoning, "answer": gen.answer,
            "finish_reason": gen.finish_reason, "reasoning_finished": gen.reasoning_finished,
            "safety": gen.safety.to_dict() if gen.safety is not None else None, "advice": gen.advice,
            "disclaimer": gen.disclaimer, "stats": gen.stats.to_dict()}
