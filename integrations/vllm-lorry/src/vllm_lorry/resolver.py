"""``LorryResolver``: vLLM's ``LoRAResolver`` for Lorry references.

vLLM consults its resolvers when a request names a model it does not serve yet and
``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` is on. A name ``NAMESPACE/NAME@REF`` is fetched
from Lorry (``vllm_lorry.fetch``) and loaded under that name; vLLM keeps it loaded
under that name from then on (an alias is resolved at its first use: pin a version,
``@3`` or ``@sha256:…``, where that matters). Any other name is left to the other
resolvers.

A reference that Lorry does not know gives ``None`` (vLLM answers 404). One that must
not be served here (another base model, not a LoRA adapter, a corrupted file) raises
``VLLMValidationError``, which vLLM answers with 400 and the reason; an unreachable
Lorry raises ``VLLMServerError`` (500).
"""

from __future__ import annotations

import asyncio
import hashlib

from vllm.exceptions import VLLMServerError, VLLMValidationError
from vllm.logger import init_logger
from vllm.lora.request import LoRARequest
from vllm.lora.resolver import LoRAResolver

from vllm_lorry.fetch import (
    LOGGER_NAME,
    AdapterRefused,
    RegistryUnavailable,
    Settings,
    check_base_model,
    fetch_adapter,
    parse_reference,
)

logger = init_logger(LOGGER_NAME)


class LorryResolver(LoRAResolver):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def resolve_lora(self, base_model_name: str, lora_name: str) -> LoRARequest | None:
        parsed = parse_reference(lora_name)
        if parsed is None:
            return None
        repository, ref = parsed
        try:
            adapter = await asyncio.to_thread(fetch_adapter, self.settings, repository, ref)
            if adapter is None:
                return None
            check_base_model(adapter, base_model_name, self.settings)
        except AdapterRefused as exc:
            logger.error("Lorry resolver refused %s: %s", lora_name, exc)
            raise VLLMValidationError(str(exc), parameter="model", value=lora_name) from exc
        except RegistryUnavailable as exc:
            logger.error("Lorry resolver could not fetch %s: %s", lora_name, exc)
            raise VLLMServerError(str(exc)) from exc
        logger.info(
            "Lorry resolver: %s is version %s (%s) of %s, in %s",
            lora_name,
            adapter.version,
            adapter.digest,
            adapter.repository,
            adapter.path,
        )
        return LoRARequest(
            lora_name=lora_name,
            lora_int_id=_positive_id(adapter.commit),
            lora_path=str(adapter.path),
            base_model_name=base_model_name,
        )


def _positive_id(commit: str) -> int:
    """A stable id > 0 (vLLM replaces it with its own counter when it loads the adapter)."""
    return int(hashlib.sha256(commit.encode()).hexdigest()[:12], 16) + 1
