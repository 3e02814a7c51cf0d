"""API tokens: created and shown once, stored only as sha256 hashes, revoked, checked.

A token reads ``lorry_<id>_<secret>``: ``id`` (12 hex characters) finds the
row, the sha256 of the whole token must equal the stored hash. The secret has
256 bits of entropy, so a plain sha256 (no slow KDF) cannot be reversed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from registry.db import write_transaction
from registry.errors import InvalidInput, TokenNotFound, Unauthorized
from registry.schemas.trust import TokenCreated, TokenList, TokenOut
from registry.services.audit import Caller, record_event
from registry.services.principals import ADMIN, SCOPES, Principal, expand_scopes
from registry.services.visibility import check_pattern
from registry.tables import ApiToken, utcnow

TOKEN_PREFIX = "lorry_"
TOKEN_CREATE = "token.create"
TOKEN_REVOKE = "token.revoke"
_ID_HEX = 12


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _token_out(row: ApiToken) -> TokenOut:
    return TokenOut(
        id=row.id,
        principal=row.principal,
        scopes=list(row.scopes),
        namespaces=list(row.namespaces),
        description=row.description,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


def _check_request(scopes: Sequence[str], namespaces: Sequence[str]) -> None:
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown or not scopes:
        raise InvalidInput(
            f"unknown or missing scopes {unknown}; use one or more of {', '.join(SCOPES)}"
        )
    if not namespaces:
        raise InvalidInput("a token needs at least one namespace pattern, e.g. `acme/*` or `*`")
    for pattern in namespaces:
        check_pattern(pattern)


def create_token(
    session: Session,
    caller: Caller,
    *,
    principal: str,
    scopes: Sequence[str],
    namespaces: Sequence[str] = ("*",),
    description: str = "",
    expires_at: datetime | None = None,
) -> TokenCreated:
    """Create a token and return it with its secret, which is never stored nor shown again."""
    _check_request(scopes, namespaces)
    token_id = secrets.token_hex(_ID_HEX // 2)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    row = ApiToken(
        id=token_id,
        principal=principal,
        token_hash=hash_token(token),
        scopes=sorted(set(scopes), key=SCOPES.index),
        namespaces=list(dict.fromkeys(namespaces)),
        description=description,
        created_by=caller.actor,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    with write_transaction(session):
        session.add(row)
        record_event(
            session,
            caller,
            TOKEN_CREATE,
            repository=None,
            target=f"token:{token_id}",
            after={
                "principal": principal,
                "scopes": row.scopes,
                "namespaces": row.namespaces,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    session.refresh(row)
    return TokenCreated(**_token_out(row).model_dump(), token=token)


def list_tokens(session: Session, *, include_revoked: bool = False) -> TokenList:
    statement = select(ApiToken).order_by(col(ApiToken.created_at), col(ApiToken.id))
    if not include_revoked:
        statement = statement.where(col(ApiToken.revoked_at).is_(None))
    return TokenList(items=[_token_out(row) for row in session.exec(statement).all()])


def revoke_token(
    session: Session,
    caller: Caller,
    token_id: str,
    *,
    on_revoked: Callable[[str], None] | None = None,
) -> TokenOut:
    """Revoke a token (kept, marked revoked, so the audit trail still names it);
    ``on_revoked(token_id)`` runs once the revocation is committed."""
    with write_transaction(session):
        row = session.get(ApiToken, token_id)
        if row is None:
            raise TokenNotFound(f"no token with id {token_id!r}; list them with `lorry token ls`")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.add(row)
            record_event(
                session,
                caller,
                TOKEN_REVOKE,
                repository=None,
                target=f"token:{token_id}",
                before={"principal": row.principal, "scopes": list(row.scopes)},
            )
    if on_revoked is not None:
        on_revoked(token_id)
    session.refresh(row)
    return _token_out(row)


def tokens_exist(session: Session) -> bool:
    """Whether any token was ever created (revoked ones count: revoking the last token
    does not reopen the registry)."""
    return session.exec(select(func.count()).select_from(ApiToken)).one() > 0


def active_admin_exists(session: Session) -> bool:
    now = utcnow()
    for row in session.exec(select(ApiToken).where(col(ApiToken.revoked_at).is_(None))).all():
        if ADMIN in row.scopes and (row.expires_at is None or row.expires_at > now):
            return True
    return False


def authenticate(session: Session, token: str) -> Principal:
    """The principal of a valid token; ``Unauthorized`` for anything else."""
    return authenticate_until(session, token)[0]


def authenticate_until(session: Session, token: str) -> tuple[Principal, datetime | None]:
    """The principal of a valid token and when the token expires (``None``: never)."""
    if not token.startswith(TOKEN_PREFIX):
        raise Unauthorized(
            "the bearer token is not a Lorry token (they start with `lorry_`); "
            "ask an admin for one (`lorry token create`)"
        )
    token_id = token[len(TOKEN_PREFIX) :].split("_", 1)[0]
    row = session.get(ApiToken, token_id) if len(token_id) == _ID_HEX else None
    if row is None or not hmac.compare_digest(row.token_hash, hash_token(token)):
        raise Unauthorized("the bearer token is not valid; check LORRY_TOKEN")
    if row.revoked_at is not None:
        raise Unauthorized(f"token {token_id} was revoked; ask an admin for a new one")
    if row.expires_at is not None and row.expires_at <= utcnow():
        raise Unauthorized(f"token {token_id} expired; ask an admin for a new one")
    principal = Principal(
        name=row.principal,
        scopes=expand_scopes(list(row.scopes)),
        namespaces=tuple(row.namespaces),
        token_id=row.id,
    )
    return principal, row.expires_at
