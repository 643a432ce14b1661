"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class MedtuneError(Exception):
    """Something the user can fix (bad input, bad config, missing file). No traceback is shown."""


class ConfigError(MedtuneError):
    """The config file or an override is invalid."""


class DataError(MedtuneError):
    """A data file is missing, malformed or holds records that cannot be used."""
