"""Who may read: the token (when set) on every request, and loopback host names otherwise.

With ``IBKR_ASSETS_VIEWER_TOKEN`` set, each request must carry it as ``Authorization: Bearer``,
as ``?token=`` (a page opened from a link; the answer then sets an HttpOnly cookie, derived from the token,
so the page's images and scripts are let in too) or as that cookie. The comparison is
``hmac.compare_digest``. A page requested without it gets a small login form (HTML, no
script) that posts the token to ``/login``, which sets the same cookie and sends the browser
back to the page; the API (``/api``, ``/openapi.json``) and static files answer JSON 401.
Without a token the server only answers requests addressed to a loopback name, so a web page
cannot reach it through DNS rebinding.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
from collections.abc import Awaitable, Callable
from ipaddress import ip_address
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

COOKIE = "ibkr_assets_viewer"
LOGIN_PATH = "/login"
MAX_LOGIN_BODY = 4096  # bytes of a posted login form; a token is far shorter


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


def is_page(path: str) -> bool:
    """Whether ``path`` is one of the HTML pages (not the API, its description or a file)."""
    return not (path.startswith("/api/") or path == "/api" or path.startswith("/openapi")
                or path.startswith("/static/"))  # fmt: skip


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this server only (never another host), without
    a ``token`` parameter; ``/`` for anything else."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in target):
        return "/"
    query = [(k, v) for k, vs in parse_qs(parts.query, keep_blank_values=True).items()
             for v in vs if k != "token"]  # fmt: skip
    return parts.path + (f"?{urlencode(query)}" if query else "")


_LOGIN_STYLE = (
    "body{font:15px system-ui,sans-serif;background:#f5f6f8;color:#1d2330;margin:0}"
    "main{max-width:22rem;margin:12vh auto;background:#fff;padding:1.5rem 1.75rem;"
    "border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.12)}"
    "h1{font-size:1.15rem;margin:0 0 .75rem}label{display:block;margin:.75rem 0 .25rem}"
    "input[type=password]{width:100%;box-sizing:border-box;padding:.45rem;font:inherit}"
    "button{margin-top:1rem;padding:.45rem 1rem;font:inherit}.err{color:#b3261e}"
    ".muted{color:#5b6472;font-size:.85rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_LOGIN_STYLE.encode()).digest()).decode()
LOGIN_CSP = (f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
             "base-uri 'none'; frame-ancestors 'none'")  # fmt: skip


def login_page(next_path: str, wrong: bool = False) -> HTMLResponse:
    """The form that asks for the token (status 401: the page itself was not served)."""
    error = '<p class="err" role="alert">Wrong token.</p>' if wrong else ""
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>ibkr_assets viewer: sign in</title><style>{_LOGIN_STYLE}</style></head><body>"
        "<main><h1>ibkr_assets viewer</h1>"
        '<p class="muted">This viewer needs its token (IBKR_ASSETS_VIEWER_TOKEN).</p>'
        f'{error}<form method="post" action="{LOGIN_PATH}">'
        f'<input type="hidden" name="next" value="{html.escape(next_path, quote=True)}">'
        '<label for="token">Token</label>'
        '<input type="password" id="token" name="token" autocomplete="current-password" '
        'required autofocus><button type="submit">Sign in</button></form></main></body></html>'
    )
    return HTMLResponse(page, status_code=401, headers={"Content-Security-Policy": LOGIN_CSP})


def _set_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(COOKIE, cookie_value(token), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")  # fmt: skip


async def _login(request: Request, token: str) -> Response:
    """``POST /login`` (a form: ``token``, ``next``): the cookie and back to the page, or the
    form again."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BODY:
            return JSONResponse({"detail": "login form too large"}, status_code=413)
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    supplied = (fields.get("token") or [""])[0]
    target = safe_next((fields.get("next") or ["/"])[0])
    if not token_matches(supplied, token):
        return login_page(target, wrong=True)
    response = RedirectResponse(target, status_code=303)
    _set_cookie(response, request, token)
    return response


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
        if request.url.path == LOGIN_PATH and request.method == "POST":
            return await _login(request, token)
        ok, from_query = authorized(request, token)
        if not ok and request.method in ("GET", "HEAD") and is_page(request.url.path):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return login_page(safe_next(target), wrong=from_query)
        if not ok:
            return JSONResponse(
                {"detail": "missing or wrong token: send 'Authorization: Bearer <token>' "
                           "or '?token=<token>'"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        response = await call_next(request)
        if from_query:
            _set_cookie(response, request, token)
        return response

    return guard
