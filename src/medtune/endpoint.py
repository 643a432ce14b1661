"""A minimal client for OpenAI-compatible chat endpoints (OpenAI, vLLM, Ollama, `medtune serve`), stdlib only: the
judge's (eval.judge_url, evaluation/judging.py) and the safety layer's guard (safety.guard_url, safety/guard.py). It
lives outside both packages so that safety/ does not import evaluation/.

`check()` runs before an evaluation (and when the guard loads), so a judge that is down, or a wrong URL, key or
model name, is one clear error instead of hundreds of failed judgments; it does not retry, so a wrong URL fails at
once. A request (`reply`) that meets an overloaded or restarting server (HTTP 408, 409, 429, 5xx, a connection error
or a timeout) is sent again after a wait (backoff.py: exponential with jitter, the server's Retry-After honoured,
bounded in tries and time); when that runs out it raises EndpointDown, one line naming the endpoint and the last
status. A request the endpoint refuses for good (any other HTTP 4xx) raises Refused at once.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request

from medtune.backoff import Backoff, retry_after, retryable
from medtune.errors import MedtuneError

CHECK_TIMEOUT_S = 5
REQUEST_TIMEOUT_S = 300  # a long answer from a slow local judge


class Refused(OSError):
    """The endpoint refused this request for good (HTTP 4xx: wrong model, bad request): asking again is no use."""


class EndpointDown(MedtuneError):
    """The endpoint kept failing (5xx, 429, no connection) through every try the backoff allows."""


class ChatEndpoint:
    def __init__(self, url: str, model: str | None = None, api_key_env: str | None = "OPENAI_API_KEY",
                 max_tokens: int = 1024, role: str = "judge", backoff: Backoff | None = None):
        # role names the endpoint and its settings in messages: eval.judge_url, or safety.guard_url
        self.role, self.setting = role, {"judge": "eval.judge", "guard": "safety.guard"}[role]
        self.url, self.base = url, base_url(url, f"{self.setting}_url")
        self.model, self.max_tokens = model, max_tokens
        self.api_key_env = api_key_env
        self.api_key = os.environ.get(api_key_env) if api_key_env else None  # a credential, never a behaviour
        self.backoff = backoff or Backoff()  # a test passes one with its own sleep and clock

    @property
    def id(self) -> str:
        return f"{self.base}|{self.model}"

    def check(self) -> ChatEndpoint:
        """Reach /models; pick the served model when none is named. MedtuneError when it cannot be used."""
        try:
            listed = [m.get("id") for m in self._call("GET", "/models", timeout=CHECK_TIMEOUT_S).get("data", [])]
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                raise MedtuneError(f"{self.role} endpoint {self.url} refused the request (HTTP {e.code}): put its API "
                                   f"key in ${self.api_key_env}") from None
            listed = []  # up, but without a model list: the first judgment will tell
        except (OSError, ValueError) as e:
            raise MedtuneError(f"{self.role} endpoint {self.url} is not reachable ({_reason(e)}): start the server "
                               f"(medtune serve, ollama serve, vllm serve ...) or fix {self.setting}_url") from None
        if self.model is None:
            if not listed:
                raise MedtuneError(f"{self.role} endpoint {self.url} lists no model: "
                                   f"name one with {self.setting}_model")
            self.model = listed[0]
        elif listed and not _served(self.model, listed):  # every judgment would fail with HTTP 404
            raise MedtuneError(f"{self.role} endpoint {self.url} does not serve model {self.model!r}; it serves: "
                               f"{', '.join(map(str, listed))} (set {self.setting}_model to one of them)")
        return self

    def reply(self, messages: list[dict]) -> str:
        """The assistant's reply text. Refused for a request refused for good, EndpointDown when the endpoint kept
        failing through the backoff, OSError for a reply that is not a chat completion (the judge asks again)."""
        body = {"model": self.model, "messages": messages, "temperature": 0.0, "max_tokens": self.max_tokens}
        out = self._send("POST", "/chat/completions", body, REQUEST_TIMEOUT_S)
        try:
            return out["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as e:
            raise OSError(f"unexpected response from {self.base}/chat/completions: {_reason(e)}") from None

    def _send(self, method: str, path: str, body: dict | None, timeout: float) -> dict:
        """One request, sent again after a wait while the failure is one that may pass (see backoff.py)."""
        clock, started, tries = self.backoff.clock, self.backoff.clock(), 0
        while True:
            tries += 1
            asked = None
            try:
                return self._call(method, path, body, timeout)
            except urllib.error.HTTPError as e:
                if not retryable(e.code):
                    raise Refused(f"HTTP {e.code} from {self.base}{path}: {_body(e)}") from None
                last, asked = f"HTTP {e.code}: {_body(e)}", retry_after(e.headers, clock())
            except ValueError as e:  # a body that is not JSON: no status to retry on
                raise OSError(f"unexpected response from {self.base}{path}: {_reason(e)}") from None
            except (OSError, http.client.HTTPException) as e:  # refused, reset, timed out, cut short
                last = _reason(e)
            wait = self.backoff.next_wait(tries, started, asked)
            if wait is None:
                told = f"; it asks to wait {asked:.0f} s more" if asked is not None and asked > 0 else ""
                raise EndpointDown(
                    f"{self.role} endpoint {self.base}{path} failed {tries} time{'s' * (tries > 1)} in "
                    f"{clock() - started:.0f} s (last: {last}{told}): check the server, or {self.setting}_url")
            self.backoff.sleep(wait)

    def _call(self, method: str, path: str, body: dict | None = None, timeout: float = 60) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))


def base_url(url: str, setting: str = "eval.judge_url") -> str:
    """'http://host:8000', '.../v1/' or '.../v1/chat/completions' -> 'http://host:8000/v1'."""
    url = url.strip().rstrip("/")
    url = url.removesuffix("/chat/completions").rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise MedtuneError(f"{setting} {url!r} should start with http:// or https://")
    host_and_path = url.split("://", 1)[1]
    return url if "/" in host_and_path else url + "/v1"  # a bare host means the usual /v1 prefix


def _served(model: str, listed: list) -> bool:
    # Ollama lists "llama3:latest" and answers to "llama3" as well
    return model in listed or f"{model}:latest" in listed


def _body(error: urllib.error.HTTPError) -> str:
    """The first line of an error response, which says what the server disliked."""
    try:
        text = error.read().decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return (text.splitlines() or [str(error.reason)])[0][:300]


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    text = str(reason).strip()
    return text.splitlines()[0] if text else type(error).__name__
