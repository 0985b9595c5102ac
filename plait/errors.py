"""User-facing errors. Every layer raises these for problems a user can fix; the CLI prints
the message without a traceback and exits 2, the HTTP API answers 4xx."""


class PlaitError(Exception):
    """Something the user can fix; the message says what to do."""


class InvalidInput(PlaitError):
    """A job, a request or an argument is malformed or out of range."""


class ConfigError(PlaitError):
    """The configuration file or a PLAIT_* variable is wrong."""


class MissingDependency(PlaitError):
    """A package, model or toolchain plait needs is not installed."""


class EngineError(PlaitError):
    """A model engine could not serve a request (server down, bad reply, unsupported call)."""
