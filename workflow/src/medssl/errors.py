"""The error of bad input data (standard library only, so that plan-time checks can raise it)."""


class DatasetError(ValueError):
    """Bad input data: the message names the file, the config key or the class."""
