"""One line per cause: how rows, logs and the command line show an exception."""

from __future__ import annotations


def one_line(cls_name: str, message: str) -> str:
    """``Class: first line of message``, without the module path Python puts before the class."""
    text = first_line(message)
    head, sep, rest = text.partition(": ")
    if sep and (head == cls_name or head.endswith("." + cls_name)):
        text = rest
    text = text.removesuffix(":").strip()
    return f"{cls_name}: {text}" if text else cls_name


def first_line(text: str | None) -> str:
    """The first non-blank line of ``text``, stripped."""
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def describe_exception(exc: BaseException) -> str:
    """One line for an exception; a database error names the driver's error, not SQLAlchemy's
    wrapper (whose message adds the statement and a link)."""
    import sqlalchemy as sa

    if isinstance(exc, sa.exc.SQLAlchemyError):
        inner = getattr(exc, "orig", None)
        inner = inner if isinstance(inner, BaseException) else exc
        return "database: " + one_line(type(inner).__name__, str(inner))
    return one_line(type(exc).__name__, str(exc))
