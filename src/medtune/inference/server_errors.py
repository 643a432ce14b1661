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
    """The first pydantic error as one line naming the field: 'messages: List should have at least 1 item'."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        return APIError(400, f"the request body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})")
    loc = [str(part) for part in first.get("loc", ()) if part != "body" and str(part) not in _UNION_BRANCHES
           and "[" not in str(part)]  # pydantic names the union branch tried (str, list[TextPart]): not a field
    param = ".".join(loc) or None
    message = first.get("msg", "invalid value")
    if first.get("type") == "missing":
        message = "this field is required"
    elif "input" in first and first.get("type") not in ("missing",):
        message = f"{message} (got {_short(first['input'])})"
    extra = f" ({len(errors) - 1} more problem{'s' * (len(errors) > 2)})" if len(errors) > 1 else ""
    return APIError(400, f"{param or 'body'}: {message}{extra}", param)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
