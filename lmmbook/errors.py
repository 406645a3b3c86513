"""One hierarchy for everything lmmbook refuses.

Every error raised on purpose by lmmbook derives from :class:`LmmbookError`, so a caller can catch
them all at once; the input errors also derive from :class:`ValueError`, and the ID errors from
:class:`LookupError` too, so code written against the built-in exceptions keeps working.

A message says three things: what is wrong, where (which argument, row, column or ID) and what to
do about it.

Examples
--------
>>> from lmmbook.errors import LmmbookError, ShapeMismatchError
>>> issubclass(ShapeMismatchError, LmmbookError) and issubclass(ShapeMismatchError, ValueError)
True
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = [
    "LmmbookError",
    "ConvergenceError",
    "InputError",
    "ShapeMismatchError",
    "NonFiniteError",
    "VarianceError",
    "RankDeficientError",
    "NotPositiveDefiniteError",
    "IdError",
    "PedigreeError",
    "UnknownIdError",
    "DuplicateIdError",
    "FileFormatError",
    "LmmbookWarning",
]


class LmmbookError(Exception):
    """Base class of every error that lmmbook raises on purpose."""


class ConvergenceError(LmmbookError, RuntimeError):
    """An iterative method stopped before reaching its tolerance."""


class InputError(LmmbookError, ValueError):
    """An argument cannot be used as given."""


class ShapeMismatchError(InputError):
    """Arguments that must agree in size do not (lengths, rows, a matrix that is not square)."""


class NonFiniteError(InputError):
    """An argument holds NaN or infinity where only finite numbers make sense."""


class VarianceError(InputError):
    """A variance component is zero, negative or not finite."""


class RankDeficientError(InputError):
    """A design matrix does not have full column rank, so its effects are not estimable."""


class NotPositiveDefiniteError(InputError):
    """A matrix that must be positive definite (a coefficient matrix, a K^-1) is not."""


class PedigreeError(InputError):
    """An impossible pedigree: an animal is its own parent or ancestor, or parents' roles clash."""


class IdError(InputError, LookupError):
    """IDs could not be joined."""


class UnknownIdError(IdError):
    """An ID is not among the IDs it must be matched against."""


class DuplicateIdError(IdError):
    """An ID occurs more than once where each ID must be unique."""


class FileFormatError(InputError):
    """A file cannot be read as the format it claims (the message names the file and the fault)."""


class LmmbookWarning(UserWarning):
    """Something lmmbook did not refuse but the user should know (the message says what to do)."""


def format_ids(ids: Iterable[object], limit: int = 5) -> str:
    """Quote up to `limit` IDs for a message, with the count of the rest.

    Examples
    --------
    >>> format_ids(["a", "b"])
    "'a', 'b'"
    >>> format_ids(range(8), limit=3)
    '0, 1, 2 and 5 more'
    """
    ids = [i.item() if isinstance(i, np.generic) else i for i in ids]  # show 'a', not np.str_('a')
    shown = ", ".join(repr(i) for i in ids[:limit])
    rest = len(ids) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown
