"""A stand-in for the csv module whose writer fails the way a full disk does: the header row is written,
the rows are not (ENOSPC), so tests can check that a failed export leaves nothing behind."""

from __future__ import annotations

import csv
import errno
import os


class _FullDiskWriter:
    def __init__(self, fh, **kw):
        self.writer = csv.writer(fh, **kw)

    def writerow(self, row):
        return self.writer.writerow(row)

    def writerows(self, rows):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


full_disk_csv = type("csv", (), {"writer": _FullDiskWriter})
