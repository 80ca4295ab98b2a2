"""The strategies file: one YAML document, one entry per strategy, validated before anything runs.

Each strategy's ``id`` becomes its asset key prefix and group name, so ids are slugs and unique.
Every field is checked here (unknown keys included: a typo must not silently fall back to a
default), and every problem is reported on its own line naming the file, the strategy and the
field. Secrets never live in this file: API keys and passwords come only from the environment.

Longer than most modules: one model per section of the file, with the messages it reports, so
the whole file format is read in one place.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ibkr_assets.analysis.prompts import TemplateNotFoundError, load_template
from ibkr_assets.domain.indicators import INDICATOR_COLUMNS
from ibkr_assets.domain.signal import SignalRules
from ibkr_assets.domain.sizing import RiskLimits
from ibkr_assets.settings import read_setting

STRATEGIES_FILE_ENV = "IBKR_ASSETS_STRATEGIES_FILE"
DEFAULT_STRATEGIES_FILE = "default_strategies.yaml"

_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")
_SECRET_WORDS = ("key", "secret", "token", "password", "passwd")

IndicatorName = Literal[
    "sma_20",
    "sma_50",
    "ema_12",
    "ema_26",
    "macd",
    "rsi_14",
    "atr_14",
    "bollinger",
    "daily_return",
    "price_range",
]

# What a user names -> the columns of ``INDICATOR_COLUMNS`` it stands for.
INDICATOR_GROUPS: dict[str, tuple[str, ...]] = {
    "sma_20": ("sma_20",),
    "sma_50": ("sma_50",),
    "ema_12": ("ema_12",),
    "ema_26": ("ema_26",),
    "macd": ("macd", "macd_signal", "macd_hist"),
    "rsi_14": ("rsi_14",),
    "atr_14": ("atr_14",),
    "bollinger": ("bb_upper", "bb_middle", "bb_lower"),
    "daily_return": ("daily_return",),
    "price_range": ("price_range", "range_pct"),
}


class StrategyConfigError(ValueError):
    """The strategies file is wrong; one line per problem, each naming file, strategy and field."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MarketDataConfig(_Model):
    """Where the bars come from and how many the indicators see."""

    source: Literal["sample", "csv", "postgres", "ibkr"] = "sample"
    lookback_bars: int = Field(default=200, ge=1, le=5000)
    bar_size: Literal["1 day"] = "1 day"


class PromptConfig(_Model):
    """Which versioned prompt template the analyst renders (the latest when ``version`` is unset)."""

    template: str = "chart_analysis"
    version: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _template_exists(self) -> PromptConfig:
        try:
            load_template(self.template, self.version)
        except TemplateNotFoundError as exc:
            raise ValueError(str(exc)) from None
        return self


class AnalystConfig(_Model):
    """Who reads the charts. No API key here: ``OPENAI_API_KEY`` comes from the environment."""

    provider: Literal["rules", "openai"] = "rules"
    model: str = Field(default="gpt-4o-mini", min_length=1)
    base_url: str | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL of an OpenAI-compatible server")
        return value


class ScheduleConfig(_Model):
    """When the strategy runs; runs are only requested once the calendar's session has closed."""

    cron: str = "30 16 * * 1-5"
    timezone: str = "America/New_York"
    calendar: str = "XNYS"
    enabled: bool = True

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from dagster._utils.schedules import is_valid_cron_string

        if not is_valid_cron_string(value):
            raise ValueError(
                f"{value!r} is not a cron expression (five fields, e.g. '30 16 * * 1-5')"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone (e.g. 'America/New_York', 'UTC')"
            ) from None
        return value

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: str) -> str:
        import exchange_calendars as xcals

        if value not in xcals.get_calendar_names():
            raise ValueError(
                f"{value!r} is not an exchange_calendars calendar (e.g. 'XNYS', 'XNAS', 'XLON')"
            )
        return value


class RiskConfig(_Model):
    """Pre-trade limits and the sanity rules a signal must pass. Percentages: 1.0 means 1%."""

    risk_per_trade_pct: float = Field(default=1.0, gt=0, le=100)
    max_position_pct: float = Field(default=10.0, gt=0, le=100)
    max_notional: float = Field(default=25_000.0, gt=0, allow_inf_nan=False)
    max_position: int | None = Field(default=None, gt=0)
    min_confidence: int = Field(default=60, ge=0, le=100)
    min_risk_reward: float = Field(default=1.5, gt=0, allow_inf_nan=False)
    max_entry_distance_pct: float = Field(default=3.0, gt=0, allow_inf_nan=False)
    allow_short: bool = False

    def risk_limits(self) -> RiskLimits:
        """The sizing limits: the one place a strategy's risk settings become ``RiskLimits``."""
        return RiskLimits(
            risk_per_trade_pct=self.risk_per_trade_pct,
            max_position_pct=self.max_position_pct,
            max_notional=self.max_notional,
            min_confidence=self.min_confidence,
            allow_short=self.allow_short,
            max_position=self.max_position,
        )

    def signal_rules(self) -> SignalRules:
        return SignalRules(
            min_risk_reward=self.min_risk_reward,
            max_entry_distance_pct=self.max_entry_distance_pct,
            min_confidence=self.min_confidence,
        )


class BrokerConfig(_Model):
    """Where orders go: the built-in paper simulator, or IB Gateway (paper unless live opt-in)."""

    kind: Literal["paper", "ibkr"] = "paper"
    starting_cash: float = Field(default=100_000.0, gt=0, allow_inf_nan=False)


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _ticker(value: str) -> str:
    if not _SYMBOL.match(value):
        raise ValueError(
            f"{value!r} is not a ticker (a letter, then up to 9 of A-Z, 0-9 and '.', "
            "e.g. 'AAPL', 'BRK.B')"
        )
    return value


# Upper-cased before the check, so ``aapl`` in the file is ``AAPL`` everywhere after.
Ticker = Annotated[str, BeforeValidator(_upper), AfterValidator(_ticker)]


class StrategyConfig(_Model):
    """One strategy: its symbols, data, indicators, analyst, schedule, risk limits and broker."""

    id: str
    description: str = ""
    symbols: list[Ticker] = Field(min_length=1)
    market_data: MarketDataConfig = MarketDataConfig()
    indicators: list[IndicatorName] = Field(
        default_factory=lambda: list(INDICATOR_GROUPS), min_length=1
    )
    prompt: PromptConfig = PromptConfig()
    analyst: AnalystConfig = AnalystConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    risk: RiskConfig = RiskConfig()
    broker: BrokerConfig = BrokerConfig()

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(
                f"{value!r} is not a strategy id: a lowercase letter, then up to 39 of a-z, 0-9 "
                "and '_' (it becomes the asset key prefix and group name)"
            )
        return value

    @field_validator("symbols")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        repeated = sorted({s for s in value if value.count(s) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return value

    @field_validator("indicators")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return value

    @model_validator(mode="after")
    def _rules_analyst_has_its_indicators(self) -> StrategyConfig:
        from ibkr_assets.analysis.analysts import RULES_INDICATORS

        if self.analyst.provider == "rules":
            have = set(self.indicator_columns)
            missing = [
                name
                for name, columns in INDICATOR_GROUPS.items()
                if any(c in RULES_INDICATORS for c in columns) and not have.issuperset(columns)
            ]
            if missing:
                raise ValueError(
                    f"indicators: the rules analyst reads {', '.join(missing)}: add them, or "
                    "use analyst.provider: openai"
                )
        return self

    @property
    def indicator_columns(self) -> list[str]:
        """The ``INDICATOR_COLUMNS`` this strategy uses, in their canonical order."""
        wanted = {column for name in self.indicators for column in INDICATOR_GROUPS[name]}
        return [column for column in INDICATOR_COLUMNS if column in wanted]


def _duplicate_ids(ids: Iterable[tuple[int, object]]) -> dict[str, list[int]]:
    """``id -> indexes`` for every id used by more than one strategy."""
    seen: dict[str, list[int]] = {}
    for index, strategy_id in ids:
        if isinstance(strategy_id, str):
            seen.setdefault(strategy_id, []).append(index)
    return {sid: indexes for sid, indexes in seen.items() if len(indexes) > 1}


class StrategiesFile(_Model):
    """The whole file: a non-empty list of strategies with unique ids."""

    strategies: list[StrategyConfig] = Field(min_length=1)

    @field_validator("strategies")
    @classmethod
    def _unique_ids(cls, value: list[StrategyConfig]) -> list[StrategyConfig]:
        duplicates = _duplicate_ids(enumerate(s.id for s in value))
        if duplicates:
            raise ValueError(_duplicates_text(duplicates))
        return value


def _duplicates_text(duplicates: Mapping[str, list[int]]) -> str:
    return "; ".join(
        f"strategy id {sid!r} is used by {' and '.join(f'strategies[{i}]' for i in indexes)}"
        for sid, indexes in duplicates.items()
    )


# ---------------------------------------------------------------------------------------------
# Loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key repeated in one mapping (PyYAML keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable key: the base class reports it
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def _read(path: str | Path | None) -> tuple[str, str]:
    """``(name used in messages, text)`` from the argument, the environment or the package."""
    origin = ""
    if path is None and read_setting("strategies_file"):
        path, origin = read_setting("strategies_file"), f" (from {STRATEGIES_FILE_ENV})"
    if path is None:
        packaged = resources.files(__package__).joinpath(DEFAULT_STRATEGIES_FILE)
        return str(packaged), packaged.read_text(encoding="utf-8")
    name = str(path)
    try:
        return name, Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StrategyConfigError(f"{name}: no such strategies file{origin}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StrategyConfigError(
            f"{name}: cannot read the strategies file{origin}: {reason}"
        ) from None


def _parse_yaml(name: str, text: str) -> object:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        context = ""
        if exc.context:
            started = exc.context_mark
            at = f" started at line {started.line + 1}" if started and started is not mark else ""
            context = f" ({exc.context}{at})"
        raise StrategyConfigError(f"{name}: {where}invalid YAML: {exc.problem}{context}") from None
    except yaml.YAMLError as exc:
        raise StrategyConfigError(f"{name}: invalid YAML: {exc}") from None
    if data is None:
        raise StrategyConfigError(f"{name}: the file is empty; expected a 'strategies:' list")
    if not isinstance(data, dict):
        raise StrategyConfigError(
            f"{name}: expected a mapping with a 'strategies:' list at the top, "
            f"got a {type(data).__name__}"
        )
    return data


def _field_path(loc: Iterable[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _message(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    loc = err["loc"]
    if err["type"] == "model_type":
        return "expected a mapping of fields (key: value lines)"
    if err["type"] == "extra_forbidden":
        # Never echo the value: a misplaced key may hold a secret.
        key = str(loc[-1]).lower() if loc else ""
        msg = "unknown field (check the spelling)"
        if any(word in key for word in _SECRET_WORDS):
            msg += "; secrets come only from the environment (e.g. OPENAI_API_KEY), never this file"
        return msg
    value = err.get("input")
    if err["type"] == "string_type" and isinstance(value, bool):
        return f"YAML read this as the boolean {value}: put it in quotes (e.g. 'ON', 'YES')"
    scalar = value is None or isinstance(value, (str, int, float, bool))
    if err["type"] not in {"value_error", "missing"} and scalar and "base_url" not in loc:
        msg += f" (got {value!r})"
    return msg


def _problems(name: str, exc: ValidationError, data: object) -> list[str]:
    """One line per validation error: ``file: strategy 'id': field.path: message``."""
    raw = data.get("strategies") if isinstance(data, dict) else None
    items = raw if isinstance(raw, list) else []
    errors = exc.errors()
    bad_ids = {
        e["loc"][1]
        for e in errors
        if len(e["loc"]) >= 3 and e["loc"][0] == "strategies" and e["loc"][2] == "id"
    }

    raw_ids = [(i, item.get("id")) for i, item in enumerate(items) if isinstance(item, dict)]
    duplicates = _duplicate_ids(raw_ids)

    def who(index: int) -> str:
        item = items[index] if index < len(items) else None
        sid = item.get("id") if isinstance(item, dict) else None
        if index in bad_ids or not isinstance(sid, str) or not _ID.match(sid):
            return f"strategies[{index}]"
        if sid in duplicates:
            return f"strategy {sid!r} (strategies[{index}])"
        return f"strategy {sid!r}"

    lines: list[str] = []
    for err in errors:
        loc = err["loc"]
        if err["type"] == "value_error" and loc == ("strategies",) and "is used by" in err["msg"]:
            continue  # reported below from the raw ids, with the other problems
        if len(loc) >= 2 and loc[0] == "strategies" and isinstance(loc[1], int):
            field = _field_path(loc[2:])
            prefix = f"{name}: {who(loc[1])}: " + (f"{field}: " if field else "")
        else:
            prefix = f"{name}: {_field_path(loc) or 'top level'}: "
        lines.append(prefix + _message(err))
    for sid, indexes in duplicates.items():
        used = " and ".join(f"strategies[{i}]" for i in indexes)
        lines.append(
            f"{name}: strategy {sid!r}: id: used by {used}; ids must be unique "
            "(each names an asset group)"
        )
    return lines


def _partition_problems(
    name: str, strategies: Iterable[StrategyConfig], today: dt.date | None
) -> list[str]:
    """Dagster keeps an asset under 100,000 partitions: weekdays since the start x symbols."""
    try:
        from ibkr_assets.partitions import MAX_PARTITIONS, partition_count, start_date

        start = start_date()
    except ValueError as exc:
        raise StrategyConfigError(f"{name}: {exc}") from None
    lines = []
    for strategy in strategies:
        count = partition_count(len(strategy.symbols), today=today)
        if count > MAX_PARTITIONS:
            days = count // len(strategy.symbols)
            lines.append(
                f"{name}: strategy {strategy.id!r}: symbols: {len(strategy.symbols)} symbols x "
                f"{days:,} weekdays since {start} = {count:,} partitions per asset, over "
                f"Dagster's limit of {MAX_PARTITIONS:,}; list fewer symbols or set a later "
                "IBKR_ASSETS_START_DATE"
            )
    return lines


def load_strategies(
    path: str | Path | None = None, *, today: dt.date | None = None
) -> list[StrategyConfig]:
    """The strategies in ``path``, else ``$IBKR_ASSETS_STRATEGIES_FILE``, else the packaged default.

    Raises ``StrategyConfigError`` listing every problem at once, so one edit fixes them all.
    ``today`` is for the partition-count check (defaults to the current date).
    """
    name, text = _read(path)
    data = _parse_yaml(name, text)
    try:
        parsed = StrategiesFile.model_validate(data)
    except ValidationError as exc:
        raise StrategyConfigError(_problems(name, exc, data)) from None
    too_many = _partition_problems(name, parsed.strategies, today)
    if too_many:
        raise StrategyConfigError(too_many)
    return list(parsed.strategies)


def current_strategy(strategy_id: str) -> StrategyConfig | None:
    """``strategy_id`` as the strategies file says now (None once removed from it): sensors and
    schedules read this at every tick, so an edit takes effect without a restart."""
    return next((s for s in load_strategies() if s.id == strategy_id), None)
