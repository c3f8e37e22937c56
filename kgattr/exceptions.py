"""Errors that reach the user as one line and exit code 2."""


class KgattrError(Exception):
    """Base class: the CLI prints the message and exits with code 2."""


class CatalogError(KgattrError):
    """A catalog file that cannot be read; the message names file, line and field."""


class OntologyError(KgattrError):
    """An ontology or rule file that cannot be parsed or does not fit the catalog."""


class UnknownSKUError(KgattrError):
    """A SKU that is neither in the model nor in the catalog given."""


class NotFittedError(KgattrError):
    """A completer used before `fit` or `load`."""


class ModelError(KgattrError):
    """A model directory that is missing, damaged or cannot be written; the message names the file."""


class EncoderError(KgattrError):
    """A text backend that cannot be used: unknown, or its package not installed."""
