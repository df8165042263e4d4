// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";

import {CronLib} from "../src/libraries/CronLib.sol";

/// @notice Builds packed cron specs in tests, field by field, as `coprocessor/cron.py` compiles expressions.
library CronSpecs {
    uint256 internal constant ANY_MINUTE = CronLib.MINUTE_BITS;
    uint256 internal constant ANY_HOUR = CronLib.HOUR_BITS;
    uint256 internal constant ANY_DAY = CronLib.DAY_BITS;
    uint256 internal constant ANY_MONTH = CronLib.MONTH_BITS;
    uint256 internal constant ANY_WEEKDAY = CronLib.WEEKDAY_BITS;

    /// @notice The bits `low`, `low + step`, ... up to `high`: a field's `low-high/step`.
    function range(uint256 low, uint256 high, uint256 step) internal pure returns (uint256 mask) {
        for (uint256 v = low; v <= high; v += step) {
            mask |= 1 << v;
        }
    }

    /// @notice One value: a field's `v`.
    function only(uint256 v) internal pure returns (uint256) {
        return 1 << v;
    }

    /// @notice A spec from its five fields' masks (unshifted: bit v for value v).
    function spec(uint256 minutes_, uint256 hours_, uint256 days_, uint256 months, uint256 weekdays)
        internal
        pure
        returns (uint256)
    {
        return minutes_ << CronLib.MINUTE_SHIFT | hours_ << CronLib.HOUR_SHIFT | days_ << CronLib.DAY_SHIFT | months
            << CronLib.MONTH_SHIFT | weekdays << CronLib.WEEKDAY_SHIFT;
    }

    /// @notice "*/5 * * * *"
    function every5Minutes() internal pure returns (uint256) {
        return spec(range(0, 59, 5), ANY_HOUR, ANY_DAY, ANY_MONTH, ANY_WEEKDAY);
    }

    /// @notice "0 9 * * 1-5"
    function weekdaysAt9() internal pure returns (uint256) {
        return spec(only(0), only(9), ANY_DAY, ANY_MONTH, range(1, 5, 1));
    }

    /// @notice "0 0 1 * *"
    function monthly() internal pure returns (uint256) {
        return spec(only(0), only(0), only(1), ANY_MONTH, ANY_WEEKDAY);
    }

    /// @notice "0 0 29 2 *"
    function leapDay() internal pure returns (uint256) {
        return spec(only(0), only(0), only(29), only(2), ANY_WEEKDAY);
    }
}

/// @notice Exposes CronLib's functions as external calls: for gas figures (`SubscriptionsCronGasTest`), and for
/// `tests/test_cron.py`, which compares `nextMany` on Anvil with APScheduler.
contract CronLibHarness {
    function isValid(uint256 spec) external pure returns (bool) {
        return CronLib.isValid(spec);
    }

    function matches(uint256 spec, uint256 t) external pure returns (bool) {
        return CronLib.matches(spec, t);
    }

    function next(uint256 spec, uint256 t) external pure returns (uint256) {
        return CronLib.next(spec, t);
    }

    function previous(uint256 spec, uint256 t) external pure returns (uint256) {
        return CronLib.previous(spec, t);
    }

    /// @notice `next(specs[i], times[i])` for every i: many pairs in one `eth_call`.
    function nextMany(uint256[] calldata specs, uint256[] calldata times)
        external
        pure
        returns (uint256[] memory found)
    {
        found = new uint256[](specs.length);
        for (uint256 i; i < specs.length; ++i) {
            found[i] = CronLib.next(specs[i], times[i]);
        }
    }

    function civilFromDays(uint256 days_) external pure returns (uint256, uint256, uint256, uint256) {
        return CronLib.civilFromDays(days_);
    }
}

/// @notice CronLib against hand-computed vectors (month ends, leap years, 2100, weekdays with Sunday = 0, steps,
/// the search window) and fuzzed properties of `next` and `previous` checked minute by minute.
contract CronLibTest is Test {
    uint256 internal constant NO_NEXT = CronLib.NO_NEXT;
    uint256 internal constant DAY = 86400;
    /// @dev How far the fuzz tests check, minute by minute, that nothing matches in between.
    uint256 internal constant BRUTE_WINDOW = 2 days;

    CronLibHarness internal harness = new CronLibHarness();

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          CALENDAR                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_civilFromDays_knownDates() public pure {
        _assertDate(0, 1970, 1, 1, 4); // a Thursday
        _assertDate(11016, 2000, 2, 29, 2); // 2000 is a leap year (divisible by 400): Tuesday
        _assertDate(19723, 2024, 1, 1, 1); // Monday
        _assertDate(19722, 2023, 12, 31, 0); // Sunday is 0
        _assertDate(47540, 2100, 2, 28, 0);
        _assertDate(47541, 2100, 3, 1, 1); // 2100 is not a leap year: no February 29
        _assertDate(49001, 2104, 2, 29, 5);
    }

    function test_daysFromCivil_invertsKnownDates() public pure {
        assertEq(CronLib.daysFromCivil(1970, 1, 1), 0);
        assertEq(CronLib.daysFromCivil(2000, 2, 29), 11016);
        assertEq(CronLib.daysFromCivil(2100, 3, 1), 47541);
        assertEq(CronLib.daysFromCivil(2104, 2, 29), 49001);
    }

    function test_daysInMonth_monthEndsAndLeapYears() public pure {
        uint8[12] memory lengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        for (uint256 m = 1; m <= 12; ++m) {
            assertEq(CronLib.daysInMonth(2023, m), lengths[m - 1]);
        }
        assertEq(CronLib.daysInMonth(2024, 2), 29);
        assertEq(CronLib.daysInMonth(2000, 2), 29);
        assertEq(CronLib.daysInMonth(2100, 2), 28);
        assertEq(CronLib.daysInMonth(2400, 2), 29);
    }

    function testFuzz_civilFromDays_roundTripsAndStepsOneDay(uint256 day) public pure {
        day = bound(day, 0, 1 << 32);
        (uint256 y, uint256 m, uint256 d, uint256 w) = CronLib.civilFromDays(day);
        assertEq(CronLib.daysFromCivil(y, m, d), day);
        (uint256 y2, uint256 m2, uint256 d2, uint256 w2) = CronLib.civilFromDays(day + 1);
        assertEq(w2, (w + 1) % 7);
        if (d < CronLib.daysInMonth(y, m)) {
            assertEq(abi.encode(y2, m2, d2), abi.encode(y, m, d + 1));
        } else if (m < 12) {
            assertEq(abi.encode(y2, m2, d2), abi.encode(y, m + 1, 1));
        } else {
            assertEq(abi.encode(y2, m2, d2), abi.encode(y + 1, 1, 1));
        }
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                        VALID, MATCH                        */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_isValid_acceptsEveryFieldInRange() public pure {
        assertTrue(CronLib.isValid(CronSpecs.every5Minutes()));
        assertTrue(CronLib.isValid(CronSpecs.leapDay()));
        uint256 all = CronSpecs.spec(
            CronSpecs.ANY_MINUTE, CronSpecs.ANY_HOUR, CronSpecs.ANY_DAY, CronSpecs.ANY_MONTH, CronSpecs.ANY_WEEKDAY
        );
        assertEq(all, CronLib.SPEC_BITS);
        assertTrue(CronLib.isValid(all));
        // February 30 is well formed; it matches nothing.
        assertTrue(CronLib.isValid(CronSpecs.spec(1, 1, CronSpecs.only(30), CronSpecs.only(2), 1)));
    }

    function test_isValid_rejectsAnEmptyFieldOrABitOutOfRange() public pure {
        uint256 ok = CronSpecs.monthly();
        assertFalse(CronLib.isValid(0));
        assertFalse(CronLib.isValid(ok & ~(CronLib.MINUTE_BITS << CronLib.MINUTE_SHIFT)));
        assertFalse(CronLib.isValid(ok & ~(CronLib.HOUR_BITS << CronLib.HOUR_SHIFT)));
        assertFalse(CronLib.isValid(ok & ~(CronLib.DAY_BITS << CronLib.DAY_SHIFT)));
        assertFalse(CronLib.isValid(ok & ~(CronLib.MONTH_BITS << CronLib.MONTH_SHIFT)));
        assertFalse(CronLib.isValid(ok & ~(CronLib.WEEKDAY_BITS << CronLib.WEEKDAY_SHIFT)));
        assertFalse(CronLib.isValid(ok | 1 << 60)); // minute 60
        assertFalse(CronLib.isValid(ok | 1 << (CronLib.HOUR_SHIFT + 24))); // hour 24
        assertFalse(CronLib.isValid(ok | 1 << CronLib.DAY_SHIFT)); // day 0
        assertFalse(CronLib.isValid(ok | 1 << CronLib.MONTH_SHIFT)); // month 0
        assertFalse(CronLib.isValid(ok | 1 << (CronLib.MONTH_SHIFT + 13))); // month 13
        assertFalse(CronLib.isValid(ok | 1 << (CronLib.WEEKDAY_SHIFT + 7))); // weekday 7: compiled as 0
        assertFalse(CronLib.isValid(ok | 1 << 255));
    }

    function testFuzz_isValid_rejectsAnyBitOutsideTheFields(uint256 extra) public pure {
        extra &= ~CronLib.SPEC_BITS;
        vm.assume(extra != 0);
        assertFalse(CronLib.isValid(CronSpecs.every5Minutes() | extra));
    }

    function test_matches_everyFieldAndOnlyWholeMinutes() public pure {
        uint256 spec = CronSpecs.weekdaysAt9();
        assertTrue(CronLib.matches(spec, 1709542800)); // Monday 2024-03-04 09:00
        assertFalse(CronLib.matches(spec, 1709542801)); // a second later
        assertFalse(CronLib.matches(spec, 1709542860)); // 09:01
        assertFalse(CronLib.matches(spec, 1709542800 - 2 * DAY)); // Saturday 09:00
        assertFalse(CronLib.matches(spec, 1709542800 - 1 * DAY)); // Sunday 09:00
        assertTrue(CronLib.matches(spec, 1709542800 - 3 * DAY)); // Friday 09:00
    }

    /// @dev Both day fields must match (APScheduler): "0 0 13 * 5" is Friday the 13th only, not every Friday and
    /// every 13th as crontab would have it.
    function test_matches_dayOfMonthAndDayOfWeekAreBothRequired() public pure {
        uint256 spec = CronSpecs.spec(1, 1, CronSpecs.only(13), CronSpecs.ANY_MONTH, CronSpecs.only(5));
        assertTrue(CronLib.matches(spec, 1726185600)); // Friday 2024-09-13
        assertFalse(CronLib.matches(spec, 1726185600 + 7 * DAY)); // Friday 2024-09-20
        assertFalse(CronLib.matches(spec, 1726185600 + 30 * DAY)); // Sunday 2024-10-13
        assertEq(CronLib.next(spec, 1704067200), 1726185600); // the first Friday 13th of 2024
        assertEq(CronLib.next(spec, 1726185601), 1734048000); // then 2024-12-13
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                            NEXT                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_next_stepsOfMinutes() public pure {
        uint256 spec = CronSpecs.every5Minutes();
        assertEq(CronLib.next(spec, 1704067200), 1704067200); // 2024-01-01 00:00 itself
        assertEq(CronLib.next(spec, 1704067201), 1704067500); // 00:00:01 -> 00:05
        assertEq(CronLib.next(spec, 1704067170), 1704067200); // 2023-12-31 23:59:30 -> the new year
        // "15-45/10 * * * *" is 15, 25, 35, 45: 10:46 -> 11:15.
        uint256 ranged = CronSpecs.spec(
            CronSpecs.range(15, 45, 10),
            CronSpecs.ANY_HOUR,
            CronSpecs.ANY_DAY,
            CronSpecs.ANY_MONTH,
            CronSpecs.ANY_WEEKDAY
        );
        assertEq(CronLib.next(ranged, 1704105960), 1704107700);
        assertEq(CronLib.next(ranged, 1704107700 + 1), 1704107700 + 10 minutes);
    }

    function test_next_weekdaysSkipTheWeekend() public pure {
        uint256 spec = CronSpecs.weekdaysAt9();
        assertEq(CronLib.next(spec, 1709283601), 1709542800); // Friday 2024-03-01 09:00:01 -> Monday 09:00
        assertEq(CronLib.next(spec, 1709542800 - 9 hours), 1709542800); // Monday 00:00 -> 09:00
    }

    function test_next_sundayIsZero() public pure {
        uint256 spec = CronSpecs.spec(CronSpecs.only(0), CronSpecs.only(12), CronSpecs.ANY_DAY, CronSpecs.ANY_MONTH, 1);
        assertEq(CronLib.next(spec, 1717545600), 1717934400); // Wednesday 2024-06-05 -> Sunday 2024-06-09 12:00
        uint256 saturday = CronSpecs.spec(1, 1, CronSpecs.ANY_DAY, CronSpecs.ANY_MONTH, CronSpecs.only(6));
        assertEq(CronLib.next(saturday, 1717545600), 1717545600 + 3 * DAY); // -> Saturday 2024-06-08
    }

    function test_next_monthEnds() public pure {
        assertEq(CronLib.next(CronSpecs.monthly(), 1706702400), 1706745600); // 2024-01-31 12:00 -> 2024-02-01
        uint256 the31st = CronSpecs.spec(1, 1, CronSpecs.only(31), CronSpecs.ANY_MONTH, CronSpecs.ANY_WEEKDAY);
        assertEq(CronLib.next(the31st, 1711929600), 1717113600); // 2024-04-01 -> 2024-05-31 (April has 30)
        assertEq(CronLib.next(the31st, 1717113601), 1722384000); // past 2024-05-31 -> 2024-07-31
        // "59 23 31 12 *": the year's last minute, then the next year's.
        uint256 lastMinute = CronSpecs.spec(
            CronSpecs.only(59), CronSpecs.only(23), CronSpecs.only(31), CronSpecs.only(12), CronSpecs.ANY_WEEKDAY
        );
        assertEq(CronLib.next(lastMinute, 1704067141), 1735689540); // 2023-12-31 23:59:01 -> 2024-12-31 23:59
        // "0 0 28-31 2 *": February's last days, whatever its length.
        uint256 februaryEnd = CronSpecs.spec(1, 1, CronSpecs.range(28, 31, 1), CronSpecs.only(2), CronSpecs.ANY_WEEKDAY);
        assertEq(CronLib.next(februaryEnd, 1675209600), 1677542400); // 2023-02-01 -> 2023-02-28
        assertEq(CronLib.next(februaryEnd, 1677542401), 1709078400); // -> 2024-02-28
        assertEq(CronLib.next(februaryEnd, 1709078401), 1709078400 + DAY); // -> 2024-02-29
    }

    function test_next_leapDays() public pure {
        uint256 spec = CronSpecs.leapDay();
        assertEq(CronLib.next(spec, 1709251200), 1835395200); // 2024-03-01 -> 2028-02-29
        assertEq(CronLib.next(spec, 920246400), 951782400); // 1999-03-01 -> 2000-02-29 (2000 is leap)
        // 2100 is not: from 2097, the next February 29 is in 2104, 2,921 days after 2096-02-29.
        assertEq(CronLib.next(spec, 4007836800), 4233686400);
        assertEq(CronLib.next(spec, 3981312001), 4233686400);
    }

    /// @dev The window is `SEARCH_DAYS` after the day of `t`: "0 0 29 2 5" (Friday February 29) matches on
    /// 2092-02-29 (day 44619) and 2104-02-29 (day 49001), nothing in between.
    function test_next_searchWindowEndsAfterSearchDays() public pure {
        uint256 spec = CronSpecs.spec(1, 1, CronSpecs.only(29), CronSpecs.only(2), CronSpecs.only(5));
        assertEq(CronLib.next(spec, (49001 - CronLib.SEARCH_DAYS) * DAY), 49001 * DAY);
        assertEq(CronLib.next(spec, (49000 - CronLib.SEARCH_DAYS) * DAY), NO_NEXT);
    }

    function test_next_noneForAnImpossibleDateOrAnInvalidSpec() public pure {
        uint256 february30 = CronSpecs.spec(1, 1, CronSpecs.only(30), CronSpecs.only(2), CronSpecs.ANY_WEEKDAY);
        assertEq(CronLib.next(february30, 1704067200), NO_NEXT);
        assertEq(CronLib.previous(february30, 1704067200), CronLib.NO_PREVIOUS);
        assertEq(CronLib.next(0, 1704067200), NO_NEXT);
        assertEq(CronLib.next(CronSpecs.monthly() | 1 << 255, 1704067200), NO_NEXT);
        assertEq(CronLib.previous(0, 1704067200), CronLib.NO_PREVIOUS);
    }

    function test_next_timesPastMaxTime() public pure {
        uint256 every = CronLib.SPEC_BITS;
        assertEq(CronLib.next(every, CronLib.MAX_TIME + 1), NO_NEXT);
        assertEq(CronLib.previous(every, CronLib.MAX_TIME + 1), CronLib.NO_PREVIOUS);
        // The last minute-aligned time up to MAX_TIME, and none after it.
        uint256 last = CronLib.MAX_TIME / 60 * 60;
        assertEq(CronLib.previous(every, CronLib.MAX_TIME), last);
        assertEq(CronLib.next(every, last), last);
        assertEq(CronLib.next(every, last + 1), NO_NEXT);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          PREVIOUS                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    function test_previous_vectors() public pure {
        assertEq(CronLib.previous(CronSpecs.every5Minutes(), 1704067500 - 1), 1704067200); // 00:04:59 -> 00:00
        assertEq(CronLib.previous(CronSpecs.every5Minutes(), 1704067500), 1704067500); // itself
        assertEq(CronLib.previous(CronSpecs.weekdaysAt9(), 1709542800 - 1), 1709283600); // Monday 08:59:59 -> Friday
        assertEq(CronLib.previous(CronSpecs.monthly(), 1706745600 - 1), 1704067200); // 2024-01-31 -> 2024-01-01
        assertEq(CronLib.previous(CronSpecs.leapDay(), 4233600000), 3981312000); // 2104-02-28 -> 2096-02-29
        assertEq(CronLib.previous(CronSpecs.leapDay(), 951782400 - 1), 825552000); // 2000-02-28 -> 1996-02-29
    }

    function test_previous_searchWindowAndTheEpoch() public pure {
        uint256 spec = CronSpecs.spec(1, 1, CronSpecs.only(29), CronSpecs.only(2), CronSpecs.only(5));
        assertEq(CronLib.previous(spec, (44619 + CronLib.SEARCH_DAYS) * DAY + DAY - 1), 44619 * DAY);
        assertEq(CronLib.previous(spec, (44620 + CronLib.SEARCH_DAYS) * DAY), CronLib.NO_PREVIOUS);
        // Nothing before 1970.
        assertEq(CronLib.previous(CronSpecs.leapDay(), 30 * DAY), CronLib.NO_PREVIOUS);
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                        FUZZ, GAS                           */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev `next(t)` is at or after `t`, matches, and nothing matches before it (checked over two days).
    function testFuzz_next_isTheFirstMatchAtOrAfter(uint256 seed, uint256 t) public pure {
        uint256 spec = _randomSpec(seed);
        t = bound(t, 0, 5_000_000_000);
        uint256 found = CronLib.next(spec, t);
        uint256 checkedTo = found == NO_NEXT ? t + BRUTE_WINDOW : _min(found, t + BRUTE_WINDOW);
        for (uint256 x = (t + 59) / 60 * 60; x < checkedTo; x += 60) {
            assertFalse(CronLib.matches(spec, x), "an earlier match");
        }
        if (found == NO_NEXT) return;
        assertGe(found, t);
        assertTrue(CronLib.matches(spec, found));
        assertEq(CronLib.next(spec, found), found);
        assertEq(CronLib.previous(spec, found), found);
    }

    /// @dev `previous(t)` is at or before `t`, matches, and nothing matches after it (checked over two days).
    function testFuzz_previous_isTheLastMatchAtOrBefore(uint256 seed, uint256 t) public pure {
        uint256 spec = _randomSpec(seed);
        t = bound(t, BRUTE_WINDOW, 5_000_000_000);
        uint256 found = CronLib.previous(spec, t);
        uint256 checkedFrom = found == CronLib.NO_PREVIOUS ? t - BRUTE_WINDOW : _max(found + 60, t - BRUTE_WINDOW);
        for (uint256 x = t / 60 * 60; x >= checkedFrom && x > 0; x -= 60) {
            assertFalse(CronLib.matches(spec, x), "a later match");
        }
        if (found == CronLib.NO_PREVIOUS) return;
        assertLe(found, t);
        assertTrue(CronLib.matches(spec, found));
        assertEq(CronLib.next(spec, found), found);
    }

    /// @dev Nothing matches in [t, next(t)), so the last match before `next(t)` is the last before `t`, as far as
    /// both windows reach.
    function testFuzz_previous_mirrorsNext(uint256 seed, uint256 t) public pure {
        uint256 spec = _randomSpec(seed);
        t = bound(t, 1, 5_000_000_000);
        uint256 found = CronLib.next(spec, t);
        vm.assume(found != NO_NEXT);
        uint256 before = CronLib.previous(spec, t - 1);
        uint256 windowStart = (found - 1) / DAY - _min(CronLib.SEARCH_DAYS, (found - 1) / DAY);
        uint256 expected = before / DAY >= windowStart ? before : CronLib.NO_PREVIOUS;
        assertEq(CronLib.previous(spec, found - 1), expected);
        if (before != CronLib.NO_PREVIOUS && found / DAY <= (before + 60) / DAY + CronLib.SEARCH_DAYS) {
            assertEq(CronLib.next(spec, before + 1), found);
        }
    }

    /// @dev `next` costs little whatever it skips: well under the trigger's own cost, even when it searches the whole
    /// window and finds nothing (February 30 every year, or a day 31 in the five months without one).
    function testFuzz_next_gasIsBounded(uint256 seed, uint256 t) public view {
        uint256 spec = _randomSpec(seed);
        t = bound(t, 0, 5_000_000_000);
        uint256 before = gasleft();
        harness.next(spec, t);
        assertLt(before - gasleft(), 60_000);
        uint256 never = CronSpecs.spec(1, 1, CronSpecs.only(31), 1 << 2 | 1 << 4 | 1 << 6 | 1 << 9 | 1 << 11, 1);
        before = gasleft();
        assertEq(harness.next(never, t), NO_NEXT);
        assertLt(before - gasleft(), 60_000);
    }

    /// @dev Random specs of five shapes, from dense to one date a year; every one is valid.
    function _randomSpec(uint256 seed) internal pure returns (uint256) {
        uint256 a = uint256(keccak256(abi.encode(seed, 1)));
        uint256 b = uint256(keccak256(abi.encode(seed, 2)));
        uint256 shape = seed % 5;
        uint256 minutes_ = a & CronLib.MINUTE_BITS | CronSpecs.only(b % 60);
        uint256 hours_ = (a >> 64) & CronLib.HOUR_BITS | CronSpecs.only((b >> 8) % 24);
        uint256 days_ = (a >> 96) & CronLib.DAY_BITS | CronSpecs.only(1 + (b >> 16) % 31);
        uint256 months = (a >> 128) & CronLib.MONTH_BITS | CronSpecs.only(1 + (b >> 24) % 12);
        uint256 weekdays = (a >> 144) & CronLib.WEEKDAY_BITS | CronSpecs.only((b >> 32) % 7);
        if (shape == 0) return CronSpecs.spec(minutes_, hours_, days_, months, weekdays);
        if (shape == 1) {
            // Sparse minutes and hours, every day: "m h * * *".
            return CronSpecs.spec(
                CronSpecs.only(b % 60),
                CronSpecs.only((b >> 8) % 24),
                CronSpecs.ANY_DAY,
                CronSpecs.ANY_MONTH,
                CronSpecs.ANY_WEEKDAY
            );
        }
        if (shape == 2) {
            // One date a year: "m h d mon *".
            return CronSpecs.spec(
                CronSpecs.only(b % 60),
                CronSpecs.only((b >> 8) % 24),
                CronSpecs.only(1 + (b >> 16) % 31),
                CronSpecs.only(1 + (b >> 24) % 12),
                CronSpecs.ANY_WEEKDAY
            );
        }
        if (shape == 3) {
            // A day of the month and of the week, both required.
            return CronSpecs.spec(minutes_, hours_, CronSpecs.only(1 + (b >> 16) % 31), months, weekdays);
        }
        // Steps: "*/n */k * * w".
        return CronSpecs.spec(
            CronSpecs.range(b % 7, 59, 1 + (b >> 40) % 15),
            CronSpecs.range(0, 23, 1 + (b >> 48) % 6),
            CronSpecs.ANY_DAY,
            CronSpecs.ANY_MONTH,
            weekdays
        );
    }

    function _assertDate(uint256 day, uint256 year, uint256 month, uint256 dom, uint256 weekday) internal pure {
        (uint256 y, uint256 m, uint256 d, uint256 w) = CronLib.civilFromDays(day);
        assertEq(abi.encode(y, m, d, w), abi.encode(year, month, dom, weekday));
    }

    function _min(uint256 a, uint256 b) internal pure returns (uint256) {
        return a < b ? a : b;
    }

    function _max(uint256 a, uint256 b) internal pure returns (uint256) {
        return a > b ? a : b;
    }
}
