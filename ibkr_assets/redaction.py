"""Secrets out of anything shown: URLs in messages, logs, reprs and the viewer's answers.

``redact_text`` masks the password of every URL in a text (``scheme://user:***@host``) and the
value of secret-looking query parameters (``?token=***``); a URL is a text, so it is also what
names a database or tracking store in a message. ``mask`` hides known secrets wherever they
appear (a driver's error may quote a password outside any URL).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s/@:]*):([^\s/@]*)@")
_SECRET_PARAM = re.compile(
    r"(?i)([?&](?:token|password|passwd|secret|api[_-]?key|access[_-]?key|signature|"
    r"x-amz-signature|x-amz-credential|sig)=)[^&\s#\"']*"
)


def redact_text(text: str) -> str:
    """``text`` with URL passwords and secret-looking query parameters masked."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}:{MASK}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{MASK}", text)


def redact(value: Any) -> Any:
    """``value`` (JSON data) with every string passed through ``redact_text``."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def mask(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with each of ``secrets`` (empty and one-character ones are skipped) masked."""
    for secret in sorted((s for s in secrets if s and len(s) > 1), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return redact_text(text)
