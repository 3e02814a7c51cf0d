"""How a file of a Hub commit travels: the ``uploadMode`` that preupload answers.

``regular``: the client sends the bytes base64-encoded inside the NDJSON commit, and
``huggingface_hub`` then never starts an Xet (``hf_xet``) or LFS upload for the file.
``lfs``: the client uploads the bytes first (Git LFS batch API) and the commit names
them by sha256 (``lfsFile``); that needs the LFS batch API, which this registry does not
serve yet, so every file is ``regular`` for now.
"""

from __future__ import annotations

from typing import Literal

UploadMode = Literal["regular", "lfs"]


def upload_mode(path: str, size: int) -> UploadMode:
    """The upload mode of the file at ``path`` of ``size`` bytes."""
    return "regular"
