"""`medtune ui`: a web chat page (Gradio) on the shared engine: streamed answers, the reasoning in a collapsible
block, the safety layer's refusals and disclaimer shown as such, Stop and a new conversation.

    medtune ui --run runs/phi4-med [--port 7860] [--host 127.0.0.1] [--password P | --password-file F | --ask-password]
    medtune ui --model microsoft/Phi-4-mini-instruct --adapter runs/x/adapter --compare microsoft/Phi-4-mini-instruct

--compare RUN_OR_MODEL loads a second model (a run directory, or a model name) and answers every question with
both, side by side. The page binds 127.0.0.1 (this machine only); another --host needs a password (--password,
or --password-file / --ask-password, which keep it out of the process list). A client that sends 5 wrong
passwords within a minute waits out the minute (HTTP 429). Needs gradio: pip install 'medtune[ui]'.
"""

from __future__ import annotations

import argparse
import getpass
import hmac
from pathlib import Path

from medtune.commands.args import (
    add_engine_argument,
    add_model_arguments,
    add_sampling_arguments,
    engine_config,
    load_engine,
    sampling_params,
)
from medtune.errors import MedtuneError, first_line
from medtune.rundir import CONFIG_FILE

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    add_engine_argument(parser, "; --compare's model runs on the same engine")
    group = parser.add_argument_group("page")
    group.add_argument("--compare", metavar="RUN_OR_MODEL",
                       help="a second model to answer beside the first: a run directory or a model name")
    group.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    group.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    group.add_argument("--password", help="ask for this password (with any user name) before the page opens; "
                                          "required with a --host other machines can reach (a flag shows in the "
                                          "process list: --password-file or --ask-password do not)")
    group.add_argument("--password-file", metavar="FILE", help="the password: the first line of FILE")
    group.add_argument("--ask-password", action="store_true", help="type the password at a prompt at start")


def main(args: argparse.Namespace) -> int:
    secret = password(args)
    check_access(args.host, secret)
    page_module = _page_module()  # a missing gradio fails before minutes of model loading
    cfg = engine_config(args)
    params = sampling_params(cfg)
    names = " and ".join(x for x in (args.run or args.model or args.adapter or cfg.model.name, args.compare) if x)
    print(f"medtune ui: loading {names}; the page starts once loaded", flush=True)
    engines = [load_engine(args, cfg, args.engine)]
    if args.compare:
        other = compare_args(args)
        engines.append(load_engine(other, engine_config(other), args.engine))
    labels = [label(engines[0], args), *(e.name for e in engines[1:])]
    page = page_module.ChatPage(engines, params, labels).build()
    try:
        page.launch(server_name=args.host, server_port=args.port, auth=_auth(secret),
                    auth_message="Any user name, and the password given to medtune ui.",
                    app_kwargs={"middleware": [_login_throttle()]},
                    run_history=False, prevent_thread_lock=True, quiet=True)  # questions stay off browser storage
    except OSError as error:  # the port is taken, or the address is not this machine's
        raise MedtuneError(f"cannot serve on {args.host}:{args.port}: {first_line(error)}") from None
    guarded = "password required" if secret else "no password"
    print(f"medtune ui: {' vs '.join(labels)} on http://{args.host}:{args.port} ({guarded}); Ctrl-C stops",
          flush=True)
    page.block_thread()
    return 0


def password(args: argparse.Namespace) -> str | None:
    """The page's password: from --password, the first line of --password-file, or typed at --ask-password."""
    given = [x for x in (args.password is not None, args.password_file is not None, args.ask_password) if x]
    if len(given) > 1:
        raise MedtuneError("give the password one way: --password, --password-file or --ask-password")
    if args.password_file is not None:
        path = Path(args.password_file)
        if not path.is_file():
            raise MedtuneError(f"--password-file {path}: file not found")
        text = (path.read_text(encoding="utf-8").splitlines() or [""])[0].strip()
        if not text:
            raise MedtuneError(f"--password-file {path}: the password is empty")
        return text
    if args.ask_password:
        text = getpass.getpass("password for the page: ")
        if not text:
            raise MedtuneError("--ask-password: the password is empty")
        return text
    return args.password


def check_access(host: str, password: str | None) -> None:
    """A page other machines can reach answers only behind a password."""
    if host not in LOCAL_HOSTS and not password:
        raise MedtuneError(f"--host {host} makes the page reachable from other machines: give --password too")


def compare_args(args: argparse.Namespace) -> argparse.Namespace:
    """The command line for --compare: the same flags and overrides, with the second run or model."""
    target = args.compare
    is_run = (Path(target) / CONFIG_FILE).is_file()
    return argparse.Namespace(**{**vars(args), "model": None if is_run else target,
                                 "run": target if is_run else None, "adapter": None})


def label(engine, args: argparse.Namespace) -> str:
    """The name shown on the page: the engine's, with the base model when an adapter was given."""
    return f"{engine.name} ({args.model} + adapter)" if args.adapter and args.model else engine.name


def _auth(password: str | None):
    if not password:
        return None
    return lambda _user, given: hmac.compare_digest(given.encode(), password.encode())


def _login_throttle():
    from starlette.middleware import Middleware

    from medtune.ui.login_throttle import LoginThrottle

    return Middleware(LoginThrottle)


def _page_module():
    try:
        from medtune.ui import page
    except ImportError as error:
        if (error.name or "").partition(".")[0] != "gradio":
            raise
        raise MedtuneError(f"the web page needs gradio ({first_line(error)}): pip install 'medtune[ui]'") from None
    return page
