"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class MedtuneError(Exception):
    """Something the user can fix (bad input, bad config, missing file). No traceback is shown."""


class ConfigError(MedtuneError):
    """The config file or an override is invalid."""


class DataError(MedtuneError):
    """A data file is missing, malformed or holds records that cannot be used."""


class WeightsError(MedtuneError):
    """A weights file is missing, cut short or not safetensors at all: one line naming it and what is wrong."""


def first_line(error: BaseException) -> str:
    """A library error's first line (its message says what is wrong; the rest is context), or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
