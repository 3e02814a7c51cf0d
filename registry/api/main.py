"""The API router: every resource's routes, mounted under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from registry.api.routes import aliases, audit, blobs, health, hub, repo_settings, repos, versions

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX)
api_router.include_router(repos.router)
api_router.include_router(repo_settings.router)
api_router.include_router(versions.router)
api_router.include_router(aliases.router)
api_router.include_router(audit.router)
api_router.include_router(blobs.router)

health_router = health.router
hub_router = hub.router
"""The Hugging Face Hub-compatible read API, mounted at the root like the Hub's."""
