"""``ibkr-assets serve``: the viewer under uvicorn, on a loopback address unless a token is set.

The token never appears in a log line: uvicorn's access log shows ``token=***``.
"""

from __future__ import annotations

import logging
import re

from ibkr_assets.settings import Settings
from ibkr_assets.viewer.auth import is_loopback

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
_TOKEN_PARAM = re.compile(r"([?&]token=)[^&\s]*", re.IGNORECASE)


class ServeRefused(ValueError):
    """The viewer must not start this way; the message says what to change."""


def check_bind(host: str, settings: Settings) -> None:
    """Refuse a non-loopback address without ``IBKR_ASSETS_VIEWER_TOKEN``."""
    token = settings.viewer_token.get_secret_value() if settings.viewer_token else ""
    if not is_loopback(host) and not token:
        raise ServeRefused(
            f"refusing to serve on {host!r} without a token: anyone who can reach it could read "
            "every record; set IBKR_ASSETS_VIEWER_TOKEN, or bind 127.0.0.1"
        )


class RedactTokenFilter(logging.Filter):
    """Masks ``?token=...`` in uvicorn's access-log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_PARAM.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def serve(settings: Settings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the viewer until interrupted (``check_bind`` first)."""
    import uvicorn

    from ibkr_assets.viewer.api import create_app

    check_bind(host, settings)
    config = uvicorn.Config(create_app(settings), host=host, port=port, proxy_headers=False)
    logging.getLogger("uvicorn.access").addFilter(RedactTokenFilter())
    uvicorn.Server(config).run()
