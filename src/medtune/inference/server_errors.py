"""Every error the server answers has OpenAI's shape, {"error": {message, type, param, code}}, and a message that
says what to fix: bad JSON, a missing or mistyped field, an unknown route."""

from __future__ import annotations

import logging

from medtune.inference.openai_api import APIError

log = logging.getLogger(__name__)
_UNION_BRANCHES = {"str", "int", "float", "bool", "list", "dict"}


def install_error_handlers(app) -> None:
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def reply(error: APIError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(APIError)
    async def api_error(request, error: APIError):
        return reply(error)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, error: RequestValidationError):
        return reply(validation_error(error.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(request, error: HTTPException):
        kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
        return reply(APIError(error.status_code, f"{request.method} {request.url.path}: {error.detail}", kind=kind))

    @app.exception_handler(Exception)
    async def crashed(request, error: Exception):
        log.exception("request failed")
        return reply(APIError(500, f"internal error: {type(error).__name__}: {error}", kind="server_error"))


def validation_error(errors: list[dict]) -> APIError:
    """The first pydantic error as one line naming the field as OpenAI does: 'messages[0].content: ...'."""
    if not errors:
        return APIError(400, "body: invalid request")
    if errors[0].get("type") == "json_invalid":
        why = errors[0].get("ctx", {}).get("error", "parse error")
        return APIError(400, f"the request body is not valid JSON ({why})")
    chosen, about_it = _chosen(errors)
    param = _param(_fields(chosen))
    message = chosen.get("msg", "invalid value")
    if chosen.get("type") == "missing":
        message = "this field is required"
    elif "input" in chosen:
        message = f"{message} (got {_short(chosen['input'])})"
    more = len(errors) - about_it
    extra = f" ({more} more problem{'s' * (more > 1)})" if more else ""
    return APIError(400, f"{param or 'body'}: {message}{extra}", param)


def _chosen(errors: list[dict]) -> tuple[dict, int]:
    """The first error or, when each branch of a union reported on its field (content: a string or a list of
    parts), the one that got furthest into the value: the branch the client meant. And how many were about it."""
    field = _fields(errors[0])
    about_it = [e for e in errors if _fields(e)[:len(field)] == field]
    return max(about_it, key=lambda e: len(e.get("loc", ()))), len(about_it)


def _fields(error: dict) -> tuple:
    """The error's place without "body" and the union branch tried (str, list[TextPart], function-after[...]):
    those name a type, not a field."""
    return tuple(part for part in error.get("loc", ()) if part != "body" and str(part) not in _UNION_BRANCHES
                 and "[" not in str(part))


def _param(fields: tuple) -> str | None:
    """OpenAI's spelling of a field: messages[0].content."""
    text = ""
    for part in fields:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
