"""Stable error codes for the API's own refusals (the ones that are not a ``GatewayError``).

Every error body carries a top-level ``code`` that a client may rely on: the console turns it into
words of the user's language from the one catalog (gateway/core/catalog.py), never showing the
English ``detail``. A ``GatewayError`` brings its own code (gateway/errors.py); an HTTPException
raised with a dict ``detail`` holding a ``code`` keeps that code; any other HTTPException is given
the code of its status here.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

# HTTP status -> code, for refusals raised without a code of their own.
BY_STATUS: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_input",
    429: "rate_limited",
    503: "unavailable",
}
# Codes the API raises by name (with their status in the docs/api.md table).
FIELD_REQUIRED = "field_required"  # 422: an action's required field is missing; ``field`` names it
CSRF_REFUSED = "csrf_refused"  # 403: a cookie-authenticated write without the console's header/origin
SESSION_UNKNOWN = "session_unknown"  # 401: the device session cookie is unknown, expired or revoked
SIGNIN_LIMITED = "signin_limited"  # 429: too many failed sign-in link attempts
NAMED: tuple[str, ...] = (FIELD_REQUIRED, CSRF_REFUSED, SESSION_UNKNOWN, SIGNIN_LIMITED)
ALL_CODES: tuple[str, ...] = (*dict.fromkeys(BY_STATUS.values()), *NAMED, "server_error")


def refuse(status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> HTTPException:
    """An HTTPException whose body carries ``code`` (and ``extra`` keys such as ``field``)."""
    return HTTPException(status, {"code": code, "message": message, **extra}, headers)


def code_of(status: int, detail: Any) -> str:
    if isinstance(detail, dict) and isinstance(detail.get("code"), str):
        return str(detail["code"])
    return BY_STATUS.get(status, "server_error" if status >= 500 else "bad_request")


async def http_error_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"detail": exc.detail, "code": code_of(exc.status_code, exc.detail)},
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def validation_error_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
    return JSONResponse({"detail": errors, "code": "invalid_input"}, status_code=422)
