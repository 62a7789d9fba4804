"""Errors that name the problem. All derive from ``LlembedError`` (a ``ValueError``)."""


class LlembedError(ValueError):
    """Base class of llembed's user-facing errors."""


class RecipeError(LlembedError):
    """A recipe field has an unknown or inconsistent value."""


class ModelNotFoundError(LlembedError):
    """The named model is not available on this machine (llembed never downloads)."""


class InputError(LlembedError):
    """An input text (or file of texts) cannot be embedded as given."""
