"""Cron schedules for `Subscriptions`: a 5-field expression compiled into `CronLib`'s packed spec, and its due times.

The chain checks a cron schedule itself (`solidity/src/libraries/CronLib.sol`, docs/triggers.md): UTC, whole minutes,
and a day must match both the day of month and the day of week, as APScheduler's `CronTrigger` does (standard
crontab ORs the two when both are restricted). APScheduler 3 numbers weekdays from Monday = 0 and
`CronTrigger.from_crontab` does not translate them, so the triggers built here name the weekdays instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.triggers.cron import CronTrigger

# Where each field's bitmask starts in a spec (CronLib's layout): bit `shift + v` allows value v.
MINUTE_SHIFT, HOUR_SHIFT, DAY_SHIFT, MONTH_SHIFT, WEEKDAY_SHIFT = 0, 64, 96, 128, 144

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab's order: Sunday is 0 (and 7)


class CronError(ValueError):
    """A cron expression that does not compile; the message names the wrong field and what it allows."""


@dataclass(frozen=True)
class _Field:
    """One of the five fields: its values, its place in the spec, its names."""

    name: str
    low: int
    high: int  # the highest value written; day of week allows 7 (Sunday) but stores 0..6
    shift: int
    names: tuple[str, ...] = ()  # names of low, low + 1, ...
    allowed: str = ""

    def value(self, text: str) -> int:
        """One value, a number or (months, weekdays) a name."""
        if _is_number(text):
            number = int(text)
        elif text.lower() in self.names:
            number = self.low + self.names.index(text.lower())
        else:
            raise ValueError(f"{text!r} is not a number" + (" or a name" if self.names else ""))
        if not self.low <= number <= self.high:
            raise ValueError(f"{number} is out of range")
        return number


_FIELDS = (
    _Field("minute", 0, 59, MINUTE_SHIFT, allowed="0-59"),
    _Field("hour", 0, 23, HOUR_SHIFT, allowed="0-23"),
    _Field("day of month", 1, 31, DAY_SHIFT, allowed="1-31"),
    _Field("month", 1, 12, MONTH_SHIFT, _MONTHS, "1-12 or JAN-DEC"),
    _Field("day of week", 0, 7, WEEKDAY_SHIFT, _WEEKDAYS, "0-7 or SUN-SAT, 0 and 7 are Sunday"),
)
_SYNTAX = "*, a-b, */n, a-b/n, lists a,b,c"


def compile_cron(expression: str) -> int:
    """The packed `CronLib` spec of a standard 5-field cron expression (UTC); raises CronError."""
    parts = expression.split()
    if len(parts) != 5:
        raise CronError(f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), not {len(parts)}: {expression!r}")
    spec = 0
    for field, text in zip(_FIELDS, parts, strict=True):
        try:
            values = _values(field, text)
        except ValueError as e:
            raise CronError(f"cron field {field.name} {text!r}: {e} (allowed: {field.allowed}; {_SYNTAX})") from None
        for v in values:
            spec |= 1 << (field.shift + (v % 7 if field.shift == WEEKDAY_SHIFT else v))  # weekday 7 is Sunday, 0
    return spec


def _is_number(text: str) -> bool:
    """Whether `text` is a plain decimal number (ASCII digits only)."""
    return text.isascii() and text.isdigit()


def _values(field: _Field, text: str) -> set[int]:
    """The values one field's text allows."""
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not _is_number(step_text) or int(step_text) == 0:
                raise ValueError(f"step {step_text!r} is not a positive number")
            step = int(step_text)
        if base == "*":
            low, high = field.low, 6 if field.shift == WEEKDAY_SHIFT else field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = field.value(first), field.value(last)
            if low > high:
                raise ValueError(f"range {base!r} runs backwards")
        elif slash:
            raise ValueError(f"a step needs * or a range before it, not {base!r}")
        else:
            low = high = field.value(base)
        values.update(range(low, high + 1, step))
    return values


def _spec_values(spec: int, shift: int, low: int, high: int) -> list[int]:
    """The values a compiled spec allows in one field."""
    return [v for v in range(low, high + 1) if spec >> (shift + v) & 1]


def _compact(values: list[int], full: int) -> str:
    """Sorted values as APScheduler field text: `*` when all are there, else ranges `a-b` joined by commas."""
    if len(values) == full:
        return "*"
    runs: list[list[int]] = []
    for v in values:
        if runs and runs[-1][1] == v - 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def apscheduler_trigger(schedule: str | int) -> CronTrigger:
    """APScheduler's `CronTrigger` (UTC) for an expression or a compiled spec (as the chain holds it), with its
    weekdays named so Sunday stays Sunday."""
    spec = compile_cron(schedule) if isinstance(schedule, str) else schedule
    ap_days = sorted((v - 1) % 7 for v in _spec_values(spec, WEEKDAY_SHIFT, 0, 6))  # APScheduler's Monday = 0
    ap_names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    weekdays = _compact(ap_days, 7)
    if weekdays != "*":
        weekdays = ",".join("-".join(ap_names[int(d)] for d in part.split("-")) for part in weekdays.split(","))
    return CronTrigger(
        minute=_compact(_spec_values(spec, MINUTE_SHIFT, 0, 59), 60),
        hour=_compact(_spec_values(spec, HOUR_SHIFT, 0, 23), 24),
        day=_compact(_spec_values(spec, DAY_SHIFT, 1, 31), 31),
        month=_compact(_spec_values(spec, MONTH_SHIFT, 1, 12), 12),
        day_of_week=weekdays,
        timezone=UTC,
    )


def describe(expression: str) -> str:
    """A one-line reading of an expression: its fields as APScheduler shows them, in UTC, both day fields required."""
    return f"{apscheduler_trigger(expression)} in UTC; a day must match both day and day_of_week"


def next_due_times(schedule: str | int, after: int, count: int) -> list[int]:
    """The first `count` due times (Unix seconds) at or after `after` of an expression or compiled spec, by
    APScheduler, as `CronLib.next` finds them."""
    trigger = apscheduler_trigger(schedule)
    found: list[int] = []
    fire = trigger.get_next_fire_time(None, datetime.fromtimestamp(after, UTC))
    while fire is not None and len(found) < count:
        found.append(int(fire.timestamp()))
        fire = trigger.get_next_fire_time(fire, fire)
    return found
