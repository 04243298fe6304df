"""What can go wrong with the profile index, as errors a caller (and the model) can read."""

from __future__ import annotations

import errno

from predictor.errors import ValueDeskError

REBUILD_COMMAND = "valuedesk build --rebuild-index"

class ProfileIndexError(ValueDeskError):
    """The profile index cannot be opened, reached or written."""


class IndexMismatchError(ProfileIndexError):
    """The index was built with another embedding model than the one configured."""


class QueryError(ValueDeskError):
    """A search query is empty, too long or not text."""



def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    text = str(exc).lower()
    return "no space left" in text or "disk is full" in text or "database or disk is full" in text

