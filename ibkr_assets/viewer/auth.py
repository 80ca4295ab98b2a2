"""Who may read: the token (when set) on every request, and loopback host names otherwise.

With ``IBKR_ASSETS_VIEWER_TOKEN`` set, each request must carry it as ``Authorization: Bearer``,
as ``?token=`` (a page opened from a link; the answer then sets an HttpOnly cookie, derived from the token,
so the page's images and scripts are let in too) or as that cookie. The comparison is
``hmac.compare_digest``. Without a token the server only answers requests addressed to a
loopback name, so a web page cannot reach it through DNS rebinding.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from ipaddress import ip_address
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

COOKIE = "ibkr_assets_viewer"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP address) is this machine only."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ip_address(name).is_loopback
    except ValueError:
        return False


def token_matches(supplied: str | None, expected: str) -> bool:
    """Constant-time comparison (an empty or missing token is compared too)."""
    return hmac.compare_digest((supplied or "").encode(), expected.encode())


def cookie_value(token: str) -> str:
    """What the cookie holds: derived from the token, so the token itself is never sent back."""
    return hmac.new(token.encode(), b"ibkr-assets viewer session", hashlib.sha256).hexdigest()


def authorized(request: Request, token: str) -> tuple[bool, bool]:
    """(whether the request carries the token or its cookie, whether it came as ``?token=``)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return token_matches(value.strip(), token), False
    if "token" in request.query_params:
        return token_matches(request.query_params["token"], token), True
    return token_matches(request.cookies.get(COOKIE), cookie_value(token)), False


def _host_name(request: Request) -> str:
    return (urlsplit("//" + request.headers.get("host", "")).hostname or "").lower()


Handler = Callable[[Request], Awaitable[Response]]


def access_guard(token: str | None, extra_hosts: frozenset[str] = frozenset()):
    """The middleware that lets a request in, or answers 401 / 421 without reading anything."""

    async def guard(request: Request, call_next: Handler) -> Response:
        if token is None:
            host = _host_name(request)
            if not (is_loopback(host) or host in extra_hosts):
                return JSONResponse(
                    {"detail": "this viewer has no token and answers only on a loopback address"},
                    status_code=421,
                )
            return await call_next(request)
        ok, from_query = authorized(request, token)
        if not ok:
            return JSONResponse(
                {"detail": "missing or wrong token: send 'Authorization: Bearer <token>' "
                           "or '?token=<token>'"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        response = await call_next(request)
        if from_query:
            response.set_cookie(COOKIE, cookie_value(token), httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")  # fmt: skip
        return response

    return guard
