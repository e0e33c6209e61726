"""Imports every method module so that each registers its config ``kind`` (base.register)."""

from medssl.ssl import dclw, dino, simclr, simsiam, vicreg  # noqa: F401
