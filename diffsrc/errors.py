"""The diffsrc exception hierarchy.

Every error that concerns the user's code carries the user's file and line, so
that the message points where the fix has to happen.
"""


class DiffsrcError(Exception):
    """Base class of every error diffsrc raises on purpose."""

    def __init__(self, message, filename=None, lineno=None):
        self.filename = filename
        self.lineno = lineno
        self.message = message
        where = f"{filename}:{lineno}: " if filename and lineno else ""
        super().__init__(where + message)


class UnsupportedSyntaxError(DiffsrcError):
    """A Python construct diffsrc does not transform (try, yield, global writes...)."""


class NoRuleError(DiffsrcError):
    """A differentiated call has neither a derivative rule nor Python source."""


class NonScalarOutputError(DiffsrcError):
    """`grad` was asked for the gradient of a non-scalar output."""


class NonDifferentiableError(DiffsrcError):
    """`wrt` names an argument that cannot carry a gradient (int, bool, str...)."""


class SourceUnavailableError(DiffsrcError):
    """The source of a function to transform cannot be recovered."""


class TransformError(DiffsrcError):
    """A program diffsrc could parse but not transform (e.g. a structure that changes in a loop)."""
