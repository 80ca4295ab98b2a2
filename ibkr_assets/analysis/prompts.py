"""Versioned prompt templates and their deterministic rendering.

A template lives in ``templates/{id}_v{version}.md``: a short header (``id: ...``,
``version: ...``) then ``---`` then a ``string.Template`` body. The id, version and sha256 of
the body travel with every analysis, and the rendered prompt is part of the cache key, so the
same inputs must always render to the same string (fixed float precision, fixed row order).
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Mapping, Sequence
from importlib import resources

from ibkr_assets.domain.analysis import AnalysisRequest, PromptTemplate
from ibkr_assets.domain.indicators import INDICATOR_COLUMNS

_TEMPLATE_PACKAGE = "ibkr_assets.analysis"
_TEMPLATE_DIR = "templates"
_FILE_NAME = re.compile(r"^(?P<id>[a-z0-9_]+)_v(?P<version>[0-9]+)\.md$")
_PRICE_FORMAT = "{:.4f}"

# What each chart shows; the images are sent in the order given to ``render_prompt``.
TIMEFRAME_NOTES: dict[str, str] = {
    "daily": "one candlestick per trading session, with volume",
    "weekly": "one candlestick per week, with volume (the longer trend)",
}


class TemplateNotFoundError(LookupError):
    """No template file for the id/version asked for; the message lists what exists."""


def _template_files() -> dict[tuple[str, int], str]:
    """``(id, version) -> file name`` for every template shipped with the package."""
    folder = resources.files(_TEMPLATE_PACKAGE).joinpath(_TEMPLATE_DIR)
    found: dict[tuple[str, int], str] = {}
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found[(match["id"], int(match["version"]))] = entry.name
    return found


def available_templates() -> list[str]:
    """Every shipped template as ``id v<version>``, sorted."""
    return [f"{tid} v{version}" for tid, version in sorted(_template_files())]


def _parse(name: str, content: str) -> PromptTemplate:
    header, sep, body = content.partition("\n---\n")
    if not sep:
        raise ValueError(f"template {name} has no '---' line after its header")
    fields = dict(line.split(":", 1) for line in header.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    if "id" not in fields or "version" not in fields:
        raise ValueError(f"template {name} header must name its id and version")
    template = PromptTemplate(id=fields["id"], version=int(fields["version"]), text=body)
    if name != f"{template.id}_v{template.version}.md":
        raise ValueError(f"template {name} declares id {template.id!r} version {template.version}")
    return template


def load_template(template_id: str, version: int | None = None) -> PromptTemplate:
    """The template ``template_id`` at ``version`` (the latest one when ``version`` is None)."""
    files = _template_files()
    versions = sorted(v for tid, v in files if tid == template_id)
    wanted = (versions[-1] if versions else None) if version is None else version
    if wanted not in versions:
        asked = template_id if version is None else f"{template_id} v{version}"
        raise TemplateNotFoundError(
            f"no prompt template {asked}; available: {', '.join(available_templates()) or 'none'}"
        )
    name = files[(template_id, wanted)]
    folder = resources.files(_TEMPLATE_PACKAGE).joinpath(_TEMPLATE_DIR)
    return _parse(name, folder.joinpath(name).read_text(encoding="utf-8"))


def _format_value(value: float | None) -> str:
    return "n/a" if value is None else _PRICE_FORMAT.format(value)


def indicator_table(indicators: Mapping[str, float | None]) -> str:
    """A markdown table: the known indicators in their canonical order, then any others sorted."""
    known = [name for name in INDICATOR_COLUMNS if name in indicators]
    extra = sorted(name for name in indicators if name not in INDICATOR_COLUMNS)
    rows = [f"| {name} | {_format_value(indicators[name])} |" for name in (*known, *extra)]
    return "\n".join(["| indicator | value |", "| --- | --- |", *rows])


def render_prompt(
    template: PromptTemplate,
    *,
    symbol: str,
    as_of: dt.date,
    indicators: Mapping[str, float | None],
    last_close: float,
    timeframes: Sequence[str] = ("daily", "weekly"),
) -> str:
    """The prompt text for one symbol and session; same inputs, same string."""
    notes = (
        "\n".join(
            f"{i}. {name} chart: {TIMEFRAME_NOTES.get(name, 'as labelled')}"
            for i, name in enumerate(timeframes, start=1)
        )
        or "(no charts attached: use the values below)"
    )
    return string.Template(template.text).substitute(
        symbol=symbol,
        as_of=as_of.isoformat(),
        timeframe_notes=notes,
        indicator_table=indicator_table(indicators),
        last_close=_format_value(last_close),
    )


def build_request(
    *,
    symbol: str,
    as_of: dt.date,
    template: PromptTemplate,
    images: Mapping[str, bytes],
    indicators: Mapping[str, float | None],
    last_close: float,
) -> AnalysisRequest:
    """A request whose prompt is ``template`` rendered for these inputs."""
    prompt = render_prompt(
        template,
        symbol=symbol,
        as_of=as_of,
        indicators=indicators,
        last_close=last_close,
        timeframes=tuple(sorted(images)),  # the order the images are sent in
    )
    return AnalysisRequest(
        symbol, as_of, template, prompt, dict(images), dict(indicators), last_close
    )
