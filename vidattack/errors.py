"""The one exception hierarchy of vidattack. Each class carries its CLI exit code (`exit_code`: 2 for\nusage errors, 1 otherwise); the CLI prints the message as one line and exits with it, deciding nothing."""

from __future__ import annotations


class VidattackError(Exception):
    """Base class: a problem the user can fix, reported as one line without a traceback."""

    exit_code = 1


class UsageError(VidattackError):
    """The command line or API call is wrong (unknown attack, bad parameter value...)."""

    exit_code = 2


class BadParameterError(UsageError):
    """An attack or model parameter is out of range, of the wrong type, or unknown."""


class UnknownAttackError(UsageError):
    """No attack is registered under that name."""


class DatasetError(UsageError):
    """A DATASET (for `eval`, `train`) that cannot be read: unknown form, missing file, malformed line,
    a label the model does not have."""


class BadVideoError(VidattackError):
    """The input is missing, not a video, empty, truncated or has no video stream."""


class BadCheckpointError(VidattackError):
    """The model specification or checkpoint cannot be loaded (or is unsafe without trust).

    A usage error: the model (or a `--apply` file) is an option, checked once before any input, so a
    refused checkpoint exits 2 from every command.
    """

    exit_code = 2


class OutputExistsError(VidattackError):
    """An output file exists and overwriting was not allowed."""


class OutputLockedError(VidattackError):
    """Another process holds the lock of an output set (it is writing those files now)."""


class QueryBudgetExceeded(VidattackError):
    """A black-box attack asked for more queries than its budget allows."""
