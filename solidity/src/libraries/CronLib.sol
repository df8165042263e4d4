// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice Calendar (cron) schedules checked on-chain: a compiled 5-field cron spec, packed in a uint256 of
/// bitmasks, and the minute-aligned UTC times it matches.
/// @dev Layout of a spec (bit `SHIFT + v` is set when value `v` is allowed; every other bit is zero):
///
///     field          values   bits      shift
///     minute         0..59    0..59     MINUTE_SHIFT  = 0
///     hour           0..23    64..87    HOUR_SHIFT    = 64
///     day of month   1..31    97..127   DAY_SHIFT     = 96   (bit 96 unused)
///     month          1..12    129..140  MONTH_SHIFT   = 128  (bit 128 unused)
///     day of week    0..6     144..150  WEEKDAY_SHIFT = 144  (0 = Sunday)
///
/// `coprocessor/cron.py` compiles a cron expression ("0 9 * * 1-5") into this form.
///
/// Note: a time matches when every field matches: day of month AND day of week, as APScheduler's `CronTrigger`
/// does. Standard crontab (Vixie cron, POSIX) differs: when both day fields are restricted (neither is `*`) it
/// matches a day that satisfies either (OR). "0 0 13 * 5" is every Friday the 13th here, every 13th and every
/// Friday in crontab.
///
/// `next` and `previous` search a bounded window, `SEARCH_DAYS` (2,922 days, eight years) on either side of the
/// day of `t`: enough for every calendar date, February 29 included across a century year that is not a leap
/// year (2096 to 2104). Nothing matching in the window gives the sentinels `NO_NEXT` and `NO_PREVIOUS`: February
/// 30, or a date also restricted to a weekday whose next occurrence is further away (Friday February 13th recurs
/// up to 11 years apart). Whole months that cannot match are skipped with one step each, the matching days of a
/// month are found with one mask (day of month AND the month's weekday pattern), and the hour and minute with bit
/// scans: the cost is about a thousand gas per month visited (45k for the whole window at worst) and never
/// depends on the number of minutes crossed.
library CronLib {
    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                         CONSTANTS                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev Where each field's bitmask starts in a spec.
    uint256 internal constant MINUTE_SHIFT = 0;
    uint256 internal constant HOUR_SHIFT = 64;
    uint256 internal constant DAY_SHIFT = 96;
    uint256 internal constant MONTH_SHIFT = 128;
    uint256 internal constant WEEKDAY_SHIFT = 144;

    /// @dev Each field's allowed bits, unshifted: minutes 0..59, hours 0..23, days 1..31, months 1..12,
    /// weekdays 0..6.
    uint256 internal constant MINUTE_BITS = (1 << 60) - 1;
    uint256 internal constant HOUR_BITS = (1 << 24) - 1;
    uint256 internal constant DAY_BITS = (1 << 32) - 2;
    uint256 internal constant MONTH_BITS = (1 << 13) - 2;
    uint256 internal constant WEEKDAY_BITS = (1 << 7) - 1;

    /// @dev Every bit a valid spec may set.
    uint256 internal constant SPEC_BITS = MINUTE_BITS << MINUTE_SHIFT | HOUR_BITS << HOUR_SHIFT | DAY_BITS << DAY_SHIFT
        | MONTH_BITS << MONTH_SHIFT | WEEKDAY_BITS << WEEKDAY_SHIFT;

    /// @notice How far `next` searches after the day of `t`, and `previous` before it, in days (eight Julian years).
    uint256 internal constant SEARCH_DAYS = 2922;

    /// @notice The latest time handled: `next` and `previous` of a later time give their sentinel, and `next`
    /// never returns a time past it, so a due time fits a uint64.
    uint256 internal constant MAX_TIME = type(uint64).max;

    /// @notice `next`'s result when nothing matches in its window (or the spec is invalid).
    uint256 internal constant NO_NEXT = type(uint256).max;

    /// @notice `previous`'s result when nothing matches in its window (or the spec is invalid). A match at time 0
    /// (1970-01-01 00:00, a Thursday) cannot be told apart from none.
    uint256 internal constant NO_PREVIOUS = 0;

    /// @dev Bit 7k set for k in 0..4: multiplying a 7-bit weekday pattern by it repeats the pattern over 35 days.
    uint256 private constant _WEEKS = 0x10204081;

    /// @dev Internal sentinel of the in-month and in-day searches: no match left there.
    uint256 private constant _NONE = type(uint256).max;

    /// @dev 23:59, in minutes since midnight.
    uint256 private constant _LAST_MINUTE = 1439;

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                           SPECS                            */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice Whether `spec` is a well-formed spec: every field allows at least one value and no bit is set
    /// outside the fields' ranges. It may still match nothing (February 30).
    /// @param spec The packed spec
    /// @return Whether it is well formed
    function isValid(uint256 spec) internal pure returns (bool) {
        return spec & ~SPEC_BITS == 0 && spec & MINUTE_BITS != 0 && (spec >> HOUR_SHIFT) & HOUR_BITS != 0
            && (spec >> DAY_SHIFT) & DAY_BITS != 0 && (spec >> MONTH_SHIFT) & MONTH_BITS != 0
            && (spec >> WEEKDAY_SHIFT) & WEEKDAY_BITS != 0;
    }

    /// @notice Whether `t` is a minute-aligned time (a multiple of 60, at most `MAX_TIME`) every field of `spec`
    /// matches, in UTC.
    /// @param spec The packed spec
    /// @param t A Unix time, in seconds
    /// @return Whether the spec matches at `t`
    function matches(uint256 spec, uint256 t) internal pure returns (bool) {
        if (t % 60 != 0 || t > MAX_TIME) return false;
        unchecked {
            uint256 secondOfDay = t % 86400;
            (, uint256 month, uint256 day, uint256 weekday) = civilFromDays(t / 86400);
            return (spec >> (MINUTE_SHIFT + secondOfDay / 60 % 60)) & 1 != 0
                && (spec >> (HOUR_SHIFT + secondOfDay / 3600)) & 1 != 0 && (spec >> (DAY_SHIFT + day)) & 1 != 0
                && (spec >> (MONTH_SHIFT + month)) & 1 != 0 && (spec >> (WEEKDAY_SHIFT + weekday)) & 1 != 0;
        }
    }

    /// @notice The least minute-aligned time `>= t` that `spec` matches.
    /// @param spec The packed spec
    /// @param t A Unix time, in seconds
    /// @return The match, in Unix seconds; `NO_NEXT` if none falls on the day of `t` (rounded up to the minute) or
    /// the `SEARCH_DAYS` after it, if `t` or the match is past `MAX_TIME`, or if `spec` is not valid
    function next(uint256 spec, uint256 t) internal pure returns (uint256) {
        if (t > MAX_TIME || !isValid(spec)) return NO_NEXT;
        unchecked {
            uint256 clock = (t + 59) / 60; // minutes since 1970, rounded up; then minutes since midnight
            uint256 lastDay = clock / 1440 + SEARCH_DAYS;
            (uint256 year, uint256 month, uint256 day,) = civilFromDays(clock / 1440);
            clock %= 1440;
            uint256 months = (spec >> MONTH_SHIFT) & MONTH_BITS;
            while (true) {
                uint256 m = months >> month << month;
                if (m == 0) {
                    // No month left this year: from January 1st of the next.
                    ++year;
                    (month, day, clock) = (1, 1, 0);
                    continue;
                }
                m = _lowestBit(m);
                if (m != month) (month, day, clock) = (m, 1, 0);
                uint256 first = daysFromCivil(year, month, 1);
                if (first + day - 1 > lastDay) return NO_NEXT;
                uint256 found = _nextInMonth(spec, first, daysInMonth(year, month), day, clock);
                if (found != _NONE) return found / 86400 > lastDay || found > MAX_TIME ? NO_NEXT : found;
                (month, day, clock) = (month + 1, 1, 0);
            }
        }
        return NO_NEXT; // unreachable: the loop returns
    }

    /// @notice The greatest minute-aligned time `<= t` that `spec` matches.
    /// @param spec The packed spec
    /// @param t A Unix time, in seconds
    /// @return The match, in Unix seconds; `NO_PREVIOUS` (0) if none falls on the day of `t` or the `SEARCH_DAYS`
    /// before it (and after 1970), if `t` is past `MAX_TIME`, or if `spec` is not valid
    function previous(uint256 spec, uint256 t) internal pure returns (uint256) {
        if (t > MAX_TIME || !isValid(spec)) return NO_PREVIOUS;
        unchecked {
            uint256 clock = t / 60; // minutes since 1970, rounded down; then minutes since midnight
            uint256 firstDay = clock / 1440 > SEARCH_DAYS ? clock / 1440 - SEARCH_DAYS : 0;
            (uint256 year, uint256 month, uint256 day,) = civilFromDays(clock / 1440);
            clock %= 1440;
            uint256 months = (spec >> MONTH_SHIFT) & MONTH_BITS;
            while (true) {
                // `month` is 0 after January: no candidate, to the year before.
                uint256 m = months & ((2 << month) - 1);
                if (m == 0) {
                    if (year == 1970) return NO_PREVIOUS;
                    --year;
                    (month, day, clock) = (12, 31, _LAST_MINUTE);
                    continue;
                }
                m = _highestBit(m);
                if (m != month) (month, day, clock) = (m, 31, _LAST_MINUTE);
                uint256 first = daysFromCivil(year, month, 1);
                uint256 length = daysInMonth(year, month);
                if (day > length) day = length;
                if (first + day - 1 < firstDay) return NO_PREVIOUS;
                uint256 found = _previousInMonth(spec, first, length, day, clock);
                if (found != _NONE) return found / 86400 < firstDay ? NO_PREVIOUS : found;
                (month, day, clock) = (month - 1, 31, _LAST_MINUTE);
            }
        }
        return NO_PREVIOUS; // unreachable: the loop returns
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                          CALENDAR                          */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @notice The proleptic Gregorian date of a Unix day (days since 1970-01-01), and its weekday.
    /// @dev Howard Hinnant's `civil_from_days` ("chrono-Compatible Low-Level Date Algorithms",
    /// https://howardhinnant.github.io/date_algorithms.html), for non-negative days only: the year is counted from
    /// March 1st in 400-year eras of 146,097 days, so February (and its leap day) ends the computed year.
    /// @param days_ Days since 1970-01-01
    /// @return year The year
    /// @return month The month, 1..12
    /// @return day The day of the month, 1..31
    /// @return weekday The day of the week, 0..6, 0 = Sunday (1970-01-01 was a Thursday, 4)
    function civilFromDays(uint256 days_)
        internal
        pure
        returns (uint256 year, uint256 month, uint256 day, uint256 weekday)
    {
        unchecked {
            uint256 z = days_ + 719468; // days since 0000-03-01
            uint256 era = z / 146097;
            uint256 doe = z - era * 146097; // day of era, 0..146096
            uint256 yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; // year of era, 0..399
            uint256 doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, 0..365
            uint256 mp = (5 * doy + 2) / 153; // month from March, 0..11
            day = doy - (153 * mp + 2) / 5 + 1;
            month = mp < 10 ? mp + 3 : mp - 9;
            year = yoe + era * 400 + (month <= 2 ? 1 : 0);
            weekday = (days_ + 4) % 7;
        }
    }

    /// @notice The Unix day of a proleptic Gregorian date from 1970-01-01 on (Hinnant's `days_from_civil`, the
    /// inverse of `civilFromDays`).
    /// @param year The year, 1970 or later
    /// @param month The month, 1..12
    /// @param day The day of the month, 1..31
    /// @return Days since 1970-01-01
    function daysFromCivil(uint256 year, uint256 month, uint256 day) internal pure returns (uint256) {
        unchecked {
            if (month <= 2) --year;
            uint256 era = year / 400;
            uint256 yoe = year - era * 400;
            uint256 doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
            uint256 doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
            return era * 146097 + doe - 719468;
        }
    }

    /// @notice The number of days in `month` of `year` (Gregorian: 2100 is not a leap year, 2000 was).
    /// @param year The year
    /// @param month The month, 1..12
    /// @return The month's length, 28..31
    function daysInMonth(uint256 year, uint256 month) internal pure returns (uint256) {
        unchecked {
            if (month == 2) return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28;
            return 30 + ((month + month / 8) & 1); // 31 for January, March, May, July, August, October, December
        }
    }

    /*´:°•.°+.*•´.*:˚.°*.˚•´.°:°•.°•.*•´.*:˚.°*.˚•´.°:°•.°+.*•´.*:*/
    /*                     PRIVATE FUNCTIONS                      */
    /*.•°:°.´+˚.*°.˚:*.´•*.+°.•°:´*.´•*.•°.•°:°.´:•˚°.*°.˚:*.´+°.•*/

    /// @dev The days of a month (bit d for day d) matching both day fields: the day-of-month mask AND the
    /// weekday pattern laid over the month from the weekday of its first day (`first`, a Unix day).
    function _matchingDays(uint256 spec, uint256 first, uint256 length) private pure returns (uint256) {
        unchecked {
            uint256 weekdays = (spec >> WEEKDAY_SHIFT) & WEEKDAY_BITS;
            // Bit k: the weekday of day k + 1, (first + 4 + k) % 7, is allowed.
            uint256 pattern = ((weekdays | weekdays << 7) >> ((first + 4) % 7)) & WEEKDAY_BITS;
            return (pattern * _WEEKS) << 1 & (spec >> DAY_SHIFT) & ((2 << length) - 2);
        }
    }

    /// @dev The first match in a month (its first day `first`, a Unix day, and its `length`) at or after `day` at
    /// `clock` (minutes since midnight), in Unix seconds, or `_NONE`. Only the first day tried can fail on the clock
    /// (later days start at midnight and every field is non-empty), so the loop runs at most twice.
    function _nextInMonth(uint256 spec, uint256 first, uint256 length, uint256 day, uint256 clock)
        private
        pure
        returns (uint256)
    {
        unchecked {
            uint256 days_ = _matchingDays(spec, first, length) >> day << day;
            while (days_ != 0) {
                uint256 d = _lowestBit(days_);
                if (d != day) clock = 0;
                uint256 found = _nextInDay(spec, clock);
                if (found != _NONE) return (first + d - 1) * 86400 + found * 60;
                days_ &= days_ - 1;
            }
            return _NONE;
        }
    }

    /// @dev The last match in a month at or before `day` at `clock` (minutes since midnight), in Unix seconds, or
    /// `_NONE`.
    function _previousInMonth(uint256 spec, uint256 first, uint256 length, uint256 day, uint256 clock)
        private
        pure
        returns (uint256)
    {
        unchecked {
            uint256 days_ = _matchingDays(spec, first, length) & ((2 << day) - 1);
            while (days_ != 0) {
                uint256 d = _highestBit(days_);
                if (d != day) clock = _LAST_MINUTE;
                uint256 found = _previousInDay(spec, clock);
                if (found != _NONE) return (first + d - 1) * 86400 + found * 60;
                days_ ^= 1 << d;
            }
            return _NONE;
        }
    }

    /// @dev The first matching minute of the day at or after `clock`, in minutes since midnight, or `_NONE`.
    function _nextInDay(uint256 spec, uint256 clock) private pure returns (uint256) {
        unchecked {
            (uint256 hour, uint256 minute) = (clock / 60, clock % 60);
            uint256 minutes_ = (spec >> MINUTE_SHIFT) & MINUTE_BITS;
            uint256 hours_ = ((spec >> HOUR_SHIFT) & HOUR_BITS) >> hour << hour;
            if (hours_ == 0) return _NONE;
            uint256 h = _lowestBit(hours_);
            if (h == hour) {
                uint256 later = minutes_ >> minute << minute;
                if (later != 0) return h * 60 + _lowestBit(later);
                hours_ &= hours_ - 1; // this hour is over: the next allowed one
                if (hours_ == 0) return _NONE;
                h = _lowestBit(hours_);
            }
            return h * 60 + _lowestBit(minutes_);
        }
    }

    /// @dev The last matching minute of the day at or before `clock`, in minutes since midnight, or `_NONE`.
    function _previousInDay(uint256 spec, uint256 clock) private pure returns (uint256) {
        unchecked {
            (uint256 hour, uint256 minute) = (clock / 60, clock % 60);
            uint256 minutes_ = (spec >> MINUTE_SHIFT) & MINUTE_BITS;
            uint256 hours_ = (spec >> HOUR_SHIFT) & HOUR_BITS & ((2 << hour) - 1);
            if (hours_ == 0) return _NONE;
            uint256 h = _highestBit(hours_);
            if (h == hour) {
                uint256 earlier = minutes_ & ((2 << minute) - 1);
                if (earlier != 0) return h * 60 + _highestBit(earlier);
                hours_ ^= 1 << h; // this hour's allowed minutes are all later: the allowed hour before
                if (hours_ == 0) return _NONE;
                h = _highestBit(hours_);
            }
            return h * 60 + _highestBit(minutes_);
        }
    }

    /// @dev The index of the lowest set bit of a non-zero `x` below 2**64.
    function _lowestBit(uint256 x) private pure returns (uint256) {
        unchecked {
            return _highestBit(x & (0 - x));
        }
    }

    /// @dev The index of the highest set bit of a non-zero `x` below 2**64: a binary search, six steps.
    function _highestBit(uint256 x) private pure returns (uint256 r) {
        assembly ("memory-safe") {
            r := shl(5, gt(x, 0xffffffff))
            r := or(r, shl(4, gt(shr(r, x), 0xffff)))
            r := or(r, shl(3, gt(shr(r, x), 0xff)))
            r := or(r, shl(2, gt(shr(r, x), 0xf)))
            r := or(r, shl(1, gt(shr(r, x), 0x3)))
            r := or(r, gt(shr(r, x), 0x1))
        }
    }
}
