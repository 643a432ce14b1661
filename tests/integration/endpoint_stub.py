"""A scripted OpenAI-compatible endpoint on a thread (stdlib http.server), and a fake clock for the client's backoff:
what the judge's and the guard's tests use to see waits, Retry-After and give-ups without waiting."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from medtune.backoff import Backoff


class ScriptedEndpoint:
    """GET /v1/models lists `model`; each POST /v1/chat/completions gets the next (status, headers, text) of the
    script, the last one repeating: a 200's text is the assistant's reply, another status's text its error body."""

    def __init__(self, script: list[tuple[int, dict, str]], model: str = "stub-model"):
        self.script, self.model, self.posts = list(script), model, 0
        self._lock = threading.Lock()

    def __enter__(self) -> ScriptedEndpoint:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self._send(200, {}, {"object": "list", "data": [{"id": stub.model, "object": "model"}]})

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with stub._lock:
                    status, headers, text = stub.script[min(stub.posts, len(stub.script) - 1)]
                    stub.posts += 1
                body = ({"object": "chat.completion", "model": stub.model, "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]}
                    if status == 200 else {"error": {"message": text}})
                self._send(status, headers, body)

            def _send(self, status, headers, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeTime:
    """A clock that moves only when the client sleeps; every wait is recorded instead of slept."""

    def __init__(self, start: float = 1_700_000_000.0):
        self.now, self.waits = start, []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def backoff(self, **fields) -> Backoff:
        return Backoff(sleep=self.sleep, clock=self.clock, **fields)
