"""Namespace checks that a route can only make after reading its body (compositions, jobs),
and the caller's ``Visibility`` that every read hands to its service.

``authorize`` (mounted on the router) checks the scope a route needs on the
namespace in its path; a composition names its namespaces inside the body (the
target and every input), and a job's namespace is its target's. Services take
an ``AccessCheck`` and call it with (scope, namespace) before acting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from registry.api.auth import principal_of
from registry.errors import Forbidden
from registry.services.visibility import Visibility

AccessCheck = Callable[[str, str], None]
"""``check(scope, namespace)`` raises ``Forbidden`` unless the caller has it."""


async def get_access_check(request: Request) -> AccessCheck:
    principal = await principal_of(request)

    def check(scope: str, namespace: str) -> None:
        if not principal.allows(scope, namespace):
            raise Forbidden(
                f"{principal.name!r} lacks the {scope} scope on namespace {namespace!r}, "
                "which this request uses"
            )

    return check


AccessCheckDep = Annotated[AccessCheck, Depends(get_access_check)]


async def get_visibility(request: Request) -> Visibility:
    # Async: the principal is known once ``authorize`` ran, so no thread hop is needed.
    return Visibility.of(await principal_of(request))


VisibilityDep = Annotated[Visibility, Depends(get_visibility)]
"""The namespaces the caller may read (``registry.services.visibility``)."""
