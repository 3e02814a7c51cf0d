"""How a file of a Hub commit travels: the ``uploadMode`` that preupload answers.

What huggingface_hub 2.4 does with the answer (``_commit_api.py``, ``lfs.py``,
``_upload_pipeline.py``):

- ``"regular"``: the bytes travel base64 inside the NDJSON commit; the client reads
  each such file whole into memory and batches commits (about 100 MiB each).
- ``"lfs"``: the bytes are uploaded first and the commit names them by sha256
  (``lfsFile``). Through **Xet** whenever ``hf_xet`` is importable (a hard dependency
  on x86_64) and ``HF_HUB_DISABLE_XET`` is unset, whatever the server says
  (``registry.services.xet``). Otherwise, and for uploads from a file object, through
  the Git LFS batch API (``registry.services.lfs``). Both stream.
- Files of at least ``LORRY_HUB_LFS_MIN_BYTES`` get ``"lfs"``; smaller ones, where a
  round of upload calls costs more than the base64, ``"regular"``. With
  ``LORRY_HUB_XET=false`` (no Xet path) only a client that announces the LFS path with
  ``HF_HUB_USER_AGENT_ORIGIN=lorry-lfs`` (huggingface_hub appends ``origin/lorry-lfs``
  to its User-Agent, and must also set ``HF_HUB_DISABLE_XET=1``) gets ``"lfs"``: the
  preupload request of a client that will use Xet is byte-for-byte that of one that
  will not.
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
    if size >= settings.hub_lfs_min_bytes and (settings.hub_xet or client_uploads_lfs(user_agent)):
        return "lfs"
    return "regular"
