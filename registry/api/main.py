"""The API router: every resource's routes, mounted under ``/api/v1``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.routing import Match
from starlette.types import Scope

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


class RouterGroup:
    """Routers mounted side by side on the app under one prefix, each one level deep.

    FastAPI matches a request against an included router's routes again at every level
    of nesting, and walks the whole tree below an included router to check that its
    routes did not change, on every match: with the resource routers nested inside one
    ``/api/v1`` router, routing cost more server CPU than resolving an alias (measured,
    ``bench/load.py``). ``mount`` includes each router directly on the app instead.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.routers: list[APIRouter] = []

    def include_router(self, router: APIRouter) -> None:
        self.routers.append(router)

    def mount(self, app: FastAPI, dependencies: Sequence[Any]) -> None:
        for router in self.routers:
            _skip_foreign_paths(router, self.prefix)
            app.include_router(router, prefix=self.prefix, dependencies=dependencies)


def _skip_foreign_paths(router: APIRouter, prefix: str) -> None:
    """Let ``router`` answer "no match" at once for a path outside the literal start that
    all its routes share (``/api/v1/repos`` for the repository routes), instead of trying
    each of its routes (an included router asks its router's ``matches``; a route's path
    pattern is anchored, so no route can match a path that lacks that start)."""
    literals = [prefix + getattr(route, "path", "").split("{", 1)[0] for route in router.routes]
    common = os.path.commonprefix(literals) if literals else ""
    if len(common) <= 1:
        return
    matches: Callable[[Scope], tuple[Match, Scope]] = router.matches

    def pruned(scope: Scope) -> tuple[Match, Scope]:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if not path.startswith(common):
            return Match.NONE, {}
        return matches(scope)

    setattr(router, "matches", pruned)  # noqa: B010  # the instance's, not the class's


api_router = RouterGroup(API_PREFIX)
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
hub_router = RouterGroup()
"""The Hugging Face Hub-compatible API (read and write), mounted at the root like the Hub's."""
hub_router.include_router(hub.router)
hub_router.include_router(hub_write.router)
hub_router.include_router(hub_lfs.router)
hub_router.include_router(hub_xet.router)
