"""vLLM plugin: serve Lorry registry references (``acme/sql@production``) as LoRA adapters.

``register`` is vLLM's ``vllm.general_plugins`` entry point ``lorry_resolver`` (see
pyproject.toml). Like vLLM's own Hub resolver, which also downloads adapters from a
remote server, it must be named in ``VLLM_PLUGINS``, and it needs ``LORRY_URL``; vLLM
consults resolvers only when ``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` is on. vLLM loads
general plugins in every process it starts, so registering twice must be (and is)
harmless.
"""

from __future__ import annotations

from vllm_lorry.fetch import LOGGER_NAME, Settings

PLUGIN_NAME = "lorry_resolver"
RESOLVER_NAME = "Lorry Resolver"


def register() -> None:
    import vllm.envs as envs
    from vllm.logger import init_logger
    from vllm.lora.resolver import LoRAResolverRegistry

    from vllm_lorry.resolver import LorryResolver

    logger = init_logger(LOGGER_NAME)
    settings = Settings.from_env()
    if envs.VLLM_PLUGINS is None or PLUGIN_NAME not in envs.VLLM_PLUGINS:
        if settings is not None:
            logger.warning(
                "LORRY_URL is set, but the Lorry resolver is off: it downloads adapters, so "
                "name it in VLLM_PLUGINS (VLLM_PLUGINS=%s) to use it",
                PLUGIN_NAME,
            )
        return
    if settings is None:
        logger.warning("the Lorry resolver is enabled in VLLM_PLUGINS, but LORRY_URL is not set")
        return
    if not envs.VLLM_ALLOW_RUNTIME_LORA_UPDATING:
        logger.warning(
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING is off, so vLLM never asks the Lorry resolver"
        )
    if RESOLVER_NAME not in LoRAResolverRegistry.get_supported_resolvers():
        LoRAResolverRegistry.register_resolver(RESOLVER_NAME, LorryResolver(settings))
        logger.info(
            "Lorry resolver: adapters from %s, cached in %s", settings.url, settings.cache_dir
        )
