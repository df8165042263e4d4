"""Cron schedules: the expression compiler (`coprocessor/cron.py`) and `CronLib.next` on a real Anvil, compared with
APScheduler's CronTrigger on random expressions and times."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest
from apscheduler.triggers.cron import CronTrigger

from coprocessor.chain import ANVIL_KEYS, TxSender, connect, contract
from coprocessor.cron import (
    DAY_SHIFT,
    HOUR_SHIFT,
    MINUTE_SHIFT,
    MONTH_SHIFT,
    WEEKDAY_SHIFT,
    CronError,
    apscheduler_trigger,
    compile_cron,
    describe,
    next_due_times,
)

SEARCH_DAYS = 2922  # CronLib.SEARCH_DAYS
NO_NEXT = 2**256 - 1


def _spec(minutes: set[int], hours: set[int], days: set[int], months: set[int], weekdays: set[int]) -> int:
    """A spec built bit by bit from CronLib's layout."""
    fields = ((minutes, MINUTE_SHIFT), (hours, HOUR_SHIFT), (days, DAY_SHIFT), (months, MONTH_SHIFT), (weekdays, WEEKDAY_SHIFT))
    return sum(1 << (shift + v) for values, shift in fields for v in values)


ANY_HOUR, ANY_DAY, ANY_MONTH, ANY_WEEKDAY = set(range(24)), set(range(1, 32)), set(range(1, 13)), set(range(7))


def _ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


# --- the compiler ---


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("*/5 * * * *", _spec(set(range(0, 60, 5)), ANY_HOUR, ANY_DAY, ANY_MONTH, ANY_WEEKDAY)),
        ("0 9 * * 1-5", _spec({0}, {9}, ANY_DAY, ANY_MONTH, {1, 2, 3, 4, 5})),
        ("0 0 1 * *", _spec({0}, {0}, {1}, ANY_MONTH, ANY_WEEKDAY)),
        ("0 0 29 2 *", _spec({0}, {0}, {29}, {2}, ANY_WEEKDAY)),
        ("15-45/10 1,13 * * *", _spec({15, 25, 35, 45}, {1, 13}, ANY_DAY, ANY_MONTH, ANY_WEEKDAY)),
        ("0 12 * jan,Jul,DEC sun", _spec({0}, {12}, ANY_DAY, {1, 7, 12}, {0})),
        ("0 0 * FEB-apr MON-FRI", _spec({0}, {0}, ANY_DAY, {2, 3, 4}, {1, 2, 3, 4, 5})),
        ("0 0 * * 7", _spec({0}, {0}, ANY_DAY, ANY_MONTH, {0})),
        ("0 0 * * 5-7", _spec({0}, {0}, ANY_DAY, ANY_MONTH, {5, 6, 0})),
        ("0 0 * * */2", _spec({0}, {0}, ANY_DAY, ANY_MONTH, {0, 2, 4, 6})),
        ("0 */6 1-31/10 */3 *", _spec({0}, {0, 6, 12, 18}, {1, 11, 21, 31}, {1, 4, 7, 10}, ANY_WEEKDAY)),
        ("  59   23 31 12  6 ", _spec({59}, {23}, {31}, {12}, {6})),
    ],
)
def test_compileCron_goodExpressions_packTheExpectedBits(expression: str, expected: int) -> None:
    assert compile_cron(expression) == expected


def test_compileCron_sundayIsZeroOrSevenOrSun() -> None:
    assert compile_cron("0 0 * * 0") == compile_cron("0 0 * * 7") == compile_cron("0 0 * * SUN") == compile_cron("0 0 * * sun")


@pytest.mark.parametrize(
    ("expression", "field", "says"),
    [
        ("* * * *", "5 fields", "not 4"),
        ("* * * * * *", "5 fields", "not 6"),
        ("60 * * * *", "minute '60'", "60 is out of range (allowed: 0-59"),
        ("* 24 * * *", "hour '24'", "out of range (allowed: 0-23"),
        ("* * 0 * *", "day of month '0'", "allowed: 1-31"),
        ("* * 32 * *", "day of month '32'", "out of range"),
        ("* * * 13 *", "month '13'", "allowed: 1-12 or JAN-DEC"),
        ("* * * FOO *", "month 'FOO'", "'FOO' is not a number or a name"),
        ("* * * * 8", "day of week '8'", "0-7 or SUN-SAT, 0 and 7 are Sunday"),
        ("* * * * MON-FRY", "day of week 'MON-FRY'", "'FRY' is not a number or a name"),
        ("*/0 * * * *", "minute '*/0'", "step '0' is not a positive number"),
        ("*/x * * * *", "minute '*/x'", "step 'x' is not a positive number"),
        ("5-1 * * * *", "minute '5-1'", "range '5-1' runs backwards"),
        ("5/15 * * * *", "minute '5/15'", "a step needs * or a range before it"),
        ("1,,2 * * * *", "minute '1,,2'", "'' is not a number"),
        ("-5 * * * *", "minute '-5'", "is not a number"),
        ("L * * * *", "minute 'L'", "'L' is not a number"),
        ("* * ? * *", "day of month '?'", "is not a number"),
    ],
)
def test_compileCron_badExpressions_sayWhichFieldAndWhatIsAllowed(expression: str, field: str, says: str) -> None:
    with pytest.raises(CronError) as raised:
        compile_cron(expression)
    message = str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert field in message and says in message, message
    assert "\n" not in message


def test_describe_namesTheFieldsInApschedulersTerms() -> None:
    text = describe("0 9 * * 1-5")
    assert "day_of_week='mon-fri'" in text and "hour='9'" in text and "minute='0'" in text and "UTC" in text
    assert "day_of_week='tue-wed,sun'" in describe("0 0 * * 0,2,3")  # in APScheduler's order, Monday first
    assert "month='1-3,12'" in describe("0 0 * DEC,JAN-MAR *")


def test_nextDueTimes_weekdaysSundayAndLeapDays() -> None:
    # Friday 2024-03-01 09:00:01 -> Monday, Tuesday, Wednesday 09:00.
    assert next_due_times("0 9 * * 1-5", _ts(2024, 3, 1, 9, 0, 1), 3) == [_ts(2024, 3, d, 9) for d in (4, 5, 6)]
    # Sunday is 0: Wednesday 2024-06-05 -> Sunday 2024-06-09.
    assert next_due_times("0 12 * * 0", _ts(2024, 6, 5), 1) == [_ts(2024, 6, 9, 12)]
    # Inclusive of `after`; 2100 is not a leap year.
    assert next_due_times("0 0 29 2 *", _ts(2096, 2, 29), 2) == [_ts(2096, 2, 29), _ts(2104, 2, 29)]
    # Day of month AND day of week (APScheduler's semantics, as on-chain): Friday the 13th.
    assert next_due_times("0 0 13 * 5", _ts(2024, 1, 1), 2) == [_ts(2024, 9, 13), _ts(2024, 12, 13)]


def test_apschedulerTrigger_translatesWeekdaysThatFromCrontabWouldNot() -> None:
    """APScheduler 3 numbers weekdays from Monday = 0; its `from_crontab` keeps the numbers, so 0 becomes Monday."""
    wednesday = datetime(2024, 6, 5, tzinfo=UTC)
    assert apscheduler_trigger("0 12 * * 0").get_next_fire_time(None, wednesday) == datetime(2024, 6, 9, 12, tzinfo=UTC)
    wrong = CronTrigger.from_crontab("0 12 * * 0", timezone=UTC).get_next_fire_time(None, wednesday)
    assert wrong == datetime(2024, 6, 10, 12, tzinfo=UTC), "from_crontab's 0 is Monday"


# --- on-chain: CronLib.next against APScheduler ---


def _random_field(rng: random.Random, low: int, high: int, names: tuple[str, ...] = ()) -> str:
    """One random field: *, */n, a, a-b, a-b/n, a list, or names."""
    kind = rng.randrange(7)
    if kind == 0:
        return "*"
    if kind == 1:
        return f"*/{rng.randint(2, max(2, (high - low) // 2))}"
    a = rng.randint(low, high)
    b = rng.randint(a, high)
    if kind == 2:
        return str(a)
    if kind == 3:
        return f"{a}-{b}"
    if kind == 4:
        return f"{a}-{b}/{rng.randint(1, 5)}"
    if kind == 5:
        return ",".join(str(v) for v in sorted(rng.sample(range(low, high + 1), rng.randint(2, 4))))
    if names:
        return ",".join(rng.sample(names, rng.randint(1, 3))).upper()
    return "*"


def _random_expression(rng: random.Random) -> str:
    """A random expression that matches at least once a year or so (days of month up to 28, unless any month)."""
    minute = _random_field(rng, 0, 59)
    hour = _random_field(rng, 0, 23)
    month = _random_field(rng, 1, 12, ("jan", "mar", "apr", "jun", "aug", "sep", "nov", "dec"))
    day = _random_field(rng, 1, 31 if month == "*" else 28)
    weekday = _random_field(rng, 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
    return f"{minute} {hour} {day} {month} {weekday}"


def test_cronLibNext_onAnvil_agreesWithApscheduler(bare_anvil: str, contracts_built: None) -> None:
    """240 random (expression, time) pairs from 2000 to 2110, around 2100's missing leap day too, in four eth_calls."""
    started = time.monotonic()
    w3 = connect(bare_anvil)
    harness = contract(w3, "CronLibHarness", TxSender(w3, ANVIL_KEYS[0]).deploy("CronLibHarness"))
    rng = random.Random(20240229)
    cases: list[tuple[str, int]] = []
    for i in range(240):
        expression = _random_expression(rng)
        if i % 4 == 0:
            at = _ts(2100, 2, 1) + rng.randrange(60 * 86400)  # February and March 2100
        else:
            at = rng.randrange(_ts(2000, 1, 1), _ts(2110, 1, 1))
        cases.append((expression, at - at % 60 if i % 5 == 0 else at))  # some exactly on a minute

    found: list[int] = []
    for batch in range(0, len(cases), 60):
        chunk = cases[batch : batch + 60]
        found += harness.functions.nextMany([compile_cron(e) for e, _ in chunk], [t for _, t in chunk]).call()

    matched = 0
    for (expression, at), on_chain in zip(cases, found, strict=True):
        expected = next_due_times(expression, at, 1)
        last_day = (at + 59) // 60 * 60 // 86400 + SEARCH_DAYS  # CronLib searches this far
        if not expected or expected[0] // 86400 > last_day:
            assert on_chain == NO_NEXT, (expression, at, expected)
        else:
            assert on_chain == expected[0], (expression, at, datetime.fromtimestamp(at, UTC), expected, on_chain)
            matched += 1
    assert matched >= 200
    assert time.monotonic() - started < 30
