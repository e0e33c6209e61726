"""The error of bad input data (standard library only, so that plan-time checks can raise it)."""

SHOW = 5  # culprits (files, rows, images) a message names; a count gives the rest


class DatasetError(ValueError):
    """Bad input data: the message names the file, the config key or the class."""
