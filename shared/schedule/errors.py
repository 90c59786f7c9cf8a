"""Errors raised while parsing schedules; they know nothing of HTTP."""


class InvalidScheduleError(ValueError):
    """A schedule (cron expression, interval, date) cannot be used."""


class InvalidCronExpressionError(InvalidScheduleError):
    """The cron expression does not parse."""


class InvalidTimezoneError(InvalidScheduleError):
    """The time zone is not a known IANA name."""
