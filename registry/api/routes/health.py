from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from registry.api.deps import BlobStoreDep, SessionDep
from registry.schemas.repos import Health, Readiness
from registry.services.health import check_readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(session: SessionDep, store: BlobStoreDep) -> JSONResponse:
    readiness = check_readiness(session, store)
    status = 200 if readiness.status == "ready" else 503
    return JSONResponse(readiness.model_dump(), status_code=status)
