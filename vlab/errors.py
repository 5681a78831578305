"""The errors vlab raises on purpose.

The command line turns a :class:`ConfigError` into one line on stderr and exit status 2, and a
:class:`TrainingDiverged` into one line and exit status 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class VlabError(Exception):
    """Base class of every error vlab raises deliberately."""


class ConfigError(VlabError, ValueError):
    """A configuration, override, path or command-line value is invalid.

    The message names the key, the value given and what was expected.
    """


class DataNotFound(ConfigError):
    """Data files a config needs are not on this machine; the message says which files and how to get them.

    ``vlab reproduce`` reports such a config as skipped rather than failed.
    """


class ResourceExhausted(ConfigError):
    """The device ran out of memory for the arrays a config asks for; the message names the keys that set their
    sizes."""


class TrainingDiverged(VlabError):
    """A loss or metric became NaN or infinite during training."""
