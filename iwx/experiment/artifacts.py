"""Content types of a run's artifacts, for Sacred and the MongoDB mirror.

Python's ``mimetypes`` guesses from the suffix alone and names ``model.pt`` an
SNES page table (``application/vnd.snesdev-page-table``), so Omniboard offered to
preview a torch checkpoint as pages of binary. The suffixes iwx writes are named
here; anything else falls back to ``mimetypes``, then to binary.
"""

from __future__ import annotations

import mimetypes
from pathlib import PurePath

KNOWN = {".pt": "application/octet-stream", ".gin": "text/plain", ".txt": "text/plain",
         ".md": "text/markdown", ".json": "application/json", ".png": "image/png",
         ".svg": "image/svg+xml", ".gif": "image/gif", ".csv": "text/csv",
         ".py": "text/x-python", ".yaml": "text/yaml"}


def content_type(name: str) -> str:
    suffix = PurePath(name).suffix.lower()
    return KNOWN.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
