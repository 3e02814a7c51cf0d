"""How a file of a Hub commit travels: the ``uploadMode`` that preupload answers.

What huggingface_hub 2.4 does with the answer (``_commit_api.py``, ``lfs.py``,
``_upload_pipeline.py``):

- ``"regular"``: the bytes travel base64 inside the NDJSON commit; the client reads
  each such file whole into memory and batches commits (about 100 MiB each).
- ``"lfs"``: the bytes are uploaded first and the commit names them by sha256
  (``lfsFile``). Through **Xet** whenever ``hf_xet`` is importable (a hard dependency
  on x86_64) and ``HF_HUB_DISABLE_XET`` is unset, whatever the server says; Lorry has
  no Xet storage (CAS). Otherwise, and for uploads from a file object, through the
  Git LFS batch API (``registry.services.lfs``): streamed, basic or multipart.
- The preupload request of a client that will use Xet is byte-for-byte that of one
  that will not. So ``"lfs"`` goes only to a client that announces the LFS path with
  ``HF_HUB_USER_AGENT_ORIGIN=lorry-lfs`` (huggingface_hub appends ``origin/lorry-lfs``
  to its User-Agent), which must also set ``HF_HUB_DISABLE_XET=1``, and only for files
  of at least ``LORRY_HUB_LFS_MIN_BYTES``. Every other client gets ``"regular"`` and
  works unchanged. A client that announces LFS but still has Xet on is stopped at its
  first Xet call (``xet-write-token``) with a message naming ``HF_HUB_DISABLE_XET=1``.
"""

from __future__ import annotations

from typing import Literal

from registry.config import Settings

UploadMode = Literal["regular", "lfs"]
LFS_ORIGIN = "lorry-lfs"
"""The User-Agent token by which a client says that it uploads through the LFS batch API."""


def client_uploads_lfs(user_agent: str | None) -> bool:
    if not user_agent:
        return False
    return any(part.strip() == f"origin/{LFS_ORIGIN}" for part in user_agent.split(";"))


def upload_mode(size: int, *, settings: Settings, user_agent: str | None) -> UploadMode:
    """The upload mode of a file of ``size`` bytes for the client of ``user_agent``."""
    if size >= settings.hub_lfs_min_bytes and client_uploads_lfs(user_agent):
        return "lfs"
    return "regular"
