"""Errors as RFC 9457 problem details (``application/problem+json``), never a traceback.

Handlers raise :func:`bad_parameter` / :func:`not_found`; Litestar's own HTTP errors (unknown
route, wrong method, failed validation) are converted to the same shape; anything unexpected is
logged with its traceback on the server and answered with a bare 500 problem.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import ProblemDetailsException

from bocage.core.logs import get_logger

log = get_logger("bocage.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem(
    status: int, detail: str, *, invalid_params: list[dict[str, str]] | None = None
) -> ProblemDetailsException:
    """A problem of type ``about:blank``: its title is the HTTP status phrase (RFC 9457 §4.2)."""
    extra: dict[str, Any] | None = {"invalid_params": invalid_params} if invalid_params else None
    return ProblemDetailsException(
        status_code=status,
        title=HTTPStatus(status).phrase,
        detail=detail,
        type_="about:blank",
        extra=extra,
    )


def bad_parameter(name: str, reason: str) -> ProblemDetailsException:
    """400: the query or path parameter ``name`` is invalid (named in detail and invalid_params)."""
    return problem(
        400,
        f"invalid parameter `{name}`: {reason}",
        invalid_params=[{"name": name, "reason": reason}],
    )


def not_found(what: str) -> ProblemDetailsException:
    """404 with a detail saying what does not exist."""
    return problem(404, what)


def _instance(request: Request[Any, Any, Any]) -> str:
    return request.url.path


def http_exception_to_problem(
    request: Request[Any, Any, Any], exc: HTTPException
) -> Response[dict[str, Any]]:
    """Litestar's HTTP exceptions (404 route, 405, validation...) as problem details."""
    if isinstance(exc, ProblemDetailsException):
        pd = exc
    elif isinstance(exc, ValidationException):
        params = [
            {"name": str(e.get("key", "")), "reason": str(e.get("message", ""))}
            for e in (exc.extra if isinstance(exc.extra, list) else [])
            if isinstance(e, dict)
        ]
        names = ", ".join(f"`{p['name']}`" for p in params if p["name"]) or "the request"
        pd = problem(400, f"invalid {names}", invalid_params=params or None)
    else:
        status = exc.status_code
        detail = exc.detail if exc.detail and exc.detail != HTTPStatus(status).phrase else ""
        pd = problem(status, detail or _default_detail(status, request), invalid_params=None)
        pd.headers = exc.headers
    pd.instance = pd.instance or _instance(request)
    return pd.to_response(request)


def _default_detail(status: int, request: Request[Any, Any, Any]) -> str:
    if status == 404:
        return f"no resource at {request.url.path}"
    if status == 405:
        return f"method {request.method} is not allowed on {request.url.path}"
    return HTTPStatus(status).description


def internal_error_to_problem(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[dict[str, Any]]:
    """Anything unexpected: logged with its traceback here, answered without it."""
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    pd = problem(500, "the server could not answer this request; the error has been logged")
    pd.instance = _instance(request)
    return pd.to_response(request)
