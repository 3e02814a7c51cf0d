"""The API router: every resource's routes, mounted under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from registry.api.routes import (
    access_log,
    aliases,
    audit,
    audit_checkpoints,
    blobs,
    compositions,
    console,
    eval_jobs,
    evals,
    exports,
    health,
    hub,
    hub_lfs,
    hub_write,
    hub_xet,
    jobs,
    lifecycle,
    lineage,
    repo_settings,
    repos,
    trust,
    versions,
)
from registry.api.routes import deployments as deployment_routes
from registry.api.routes import webhooks as webhook_routes

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX)
api_router.include_router(repos.router)
api_router.include_router(repo_settings.router)
api_router.include_router(versions.router)
api_router.include_router(aliases.router)
api_router.include_router(audit.router)
api_router.include_router(audit_checkpoints.router)
api_router.include_router(blobs.router)
api_router.include_router(trust.router)
api_router.include_router(compositions.router)
api_router.include_router(jobs.router)
api_router.include_router(lineage.router)
api_router.include_router(exports.router)
api_router.include_router(console.router)
api_router.include_router(access_log.router)
api_router.include_router(webhook_routes.router)
api_router.include_router(deployment_routes.router)
api_router.include_router(evals.router)
api_router.include_router(eval_jobs.router)
api_router.include_router(lifecycle.router)

health_router = health.router
hub_router = APIRouter()
"""The Hugging Face Hub-compatible API (read and write), mounted at the root like the Hub's."""
hub_router.include_router(hub.router)
hub_router.include_router(hub_write.router)
hub_router.include_router(hub_lfs.router)
hub_router.include_router(hub_xet.router)
