"""Errors of the Lorry service.

Every error a user can cause or meet is a ``LorryError`` with a stable ``code``
and a message that says what was wrong and how to fix it. One handler in
``registry/api/errors.py`` maps them (and ``composer.ComposerError``) to HTTP.

    LorryError                      500 internal
    ├── NotFound                    404
    │   ├── RepositoryNotFound      404 repository_not_found
    │   │   └── RepositoryDeleted   404 repository_deleted
    │   ├── VersionNotFound         404 version_not_found
    │   │   └── VersionDeleted      404 version_deleted
    │   ├── AliasNotFound           404 alias_not_found
    │   ├── FileNotFound            404 file_not_found
    │   └── BlobNotFound            404 blob_not_found
    ├── InvalidInput                422 invalid_input
    │   ├── InvalidReference        422 invalid_reference
    │   ├── InvalidPath             422 invalid_path
    │   ├── PickleNotAllowed        422 pickle_not_allowed
    │   ├── InvalidAdapter          422 invalid_adapter
    │   │   └── InvalidSafetensors  422 invalid_safetensors
    │   ├── InvalidModel            422 invalid_model
    │   ├── InvalidModelCard        422 invalid_model_card
    │   ├── UnsupportedAdapterType  422 unsupported_adapter_type
    │   ├── DigestMismatch          422 digest_mismatch
    │   ├── InvalidEvalResults      422 invalid_eval_results
    │   ├── InvalidEvalTasks        422 invalid_eval_tasks
    │   ├── MissingBlob             422 missing_blob
    │   └── BlobNotUploaded         422 blob_not_uploaded
    ├── TooLarge                    413 too_large
    ├── RangeNotSatisfiable         416 range_not_satisfiable
    ├── Conflict                    409 conflict
    │   ├── RepositoryArchived      409 repository_archived
    │   └── DeletionBlocked         409 deletion_blocked
    ├── PreconditionFailed          412 precondition_failed
    ├── JobNotFound (NotFound)      404 job_not_found
    ├── StorageUnavailable          503 storage_unavailable
    ├── DatabaseUnavailable         503 database_unavailable
    ├── NotMigrated                 (startup only) not_migrated
    ├── Unauthorized                401 unauthorized
    ├── Forbidden                   403 forbidden
    │   ├── DeletionRefused         403 deletion_refused
    │   └── EvidenceRequired        403 evidence_required
    ├── TokenNotFound (NotFound)    404 token_not_found
    ├── PolicyNotFound (NotFound)   404 policy_not_found
    ├── InsecureConfiguration       (startup only) insecure_configuration
    ├── XetUnavailable (NotFound)   404 xet_unavailable
    ├── UnsupportedConfiguration    (startup only) unsupported_configuration
    ├── WebhookNotFound (NotFound)  404 webhook_not_found
    ├── DeliveryNotFound (NotFound) 404 delivery_not_found
    ├── DeploymentNotFound (NotFound) 404 deployment_not_found
    ├── DestinationRefused (InvalidInput) 422 destination_refused
    └── EvaluationFailed            500 evaluation_failed (a job's error only)
"""

from __future__ import annotations

from typing import Any


class LorryError(Exception):
    code = "internal"
    status_code = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(LorryError):
    code = "not_found"
    status_code = 404


class RepositoryNotFound(NotFound):
    code = "repository_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class RepositoryDeleted(RepositoryNotFound):
    """The repository was deleted: the message says when, by whom and why."""

    code = "repository_deleted"


class VersionDeleted(VersionNotFound):
    """The version was deleted: the message says when, by whom and why."""

    code = "version_deleted"


class AliasNotFound(NotFound):
    code = "alias_not_found"


class FileNotFound(NotFound):
    code = "file_not_found"


class BlobNotFound(NotFound):
    code = "blob_not_found"


class InvalidInput(LorryError):
    code = "invalid_input"
    status_code = 422


class InvalidReference(InvalidInput):
    code = "invalid_reference"


class InvalidPath(InvalidInput):
    code = "invalid_path"


class PickleNotAllowed(InvalidInput):
    code = "pickle_not_allowed"


class InvalidAdapter(InvalidInput):
    code = "invalid_adapter"


class InvalidSafetensors(InvalidAdapter):
    code = "invalid_safetensors"


class InvalidModel(InvalidInput):
    code = "invalid_model"


class InvalidModelCard(InvalidInput):
    code = "invalid_model_card"


class UnsupportedAdapterType(InvalidInput):
    code = "unsupported_adapter_type"


class DigestMismatch(InvalidInput):
    code = "digest_mismatch"


class MissingBlob(InvalidInput):
    code = "missing_blob"


class BlobNotUploaded(InvalidInput):
    """A version names a blob that its namespace does not hold (``blob_claims``)."""

    code = "blob_not_uploaded"


class InvalidEvalResults(InvalidInput):
    """An evaluation document Lorry cannot read; ``field`` names the offending part."""

    code = "invalid_eval_results"


class InvalidEvalTasks(InvalidInput):
    """An evaluation job's tasks: none found, unknown names, unsafe paths, too large."""

    code = "invalid_eval_tasks"


class EvaluationFailed(LorryError):
    """lm-evaluation-harness failed inside an evaluation job (the job's error)."""

    code = "evaluation_failed"


class TooLarge(LorryError):
    code = "too_large"
    status_code = 413


class RangeNotSatisfiable(LorryError):
    code = "range_not_satisfiable"
    status_code = 416


class Conflict(LorryError):
    code = "conflict"
    status_code = 409


class RepositoryArchived(Conflict):
    """A change to an archived repository (a version, an alias move, an export)."""

    code = "repository_archived"


class DeletionBlocked(Conflict):
    """A deletion that an alias, a derived version or a deployment still depends on."""

    code = "deletion_blocked"


class PreconditionFailed(LorryError):
    """A Hub commit's ``parentCommit`` is no longer the head of the branch it commits to."""

    code = "precondition_failed"
    status_code = 412


class JobNotFound(NotFound):
    code = "job_not_found"


class StorageUnavailable(LorryError):
    code = "storage_unavailable"
    status_code = 503


class DatabaseUnavailable(LorryError):
    code = "database_unavailable"
    status_code = 503


class NotMigrated(LorryError):
    code = "not_migrated"
    status_code = 503


class Unauthorized(LorryError):
    """No valid token where one is needed (missing, unknown, revoked or expired)."""

    code = "unauthorized"
    status_code = 401


class Forbidden(LorryError):
    """A valid token without the scope, namespace or reason that the operation needs."""

    code = "forbidden"
    status_code = 403


class DeletionRefused(Forbidden):
    """Repositories and versions are never deleted (Hub ``delete_repo``)."""

    code = "deletion_refused"


class EvidenceRequired(Forbidden):
    """A protected alias's rule asks for evaluation results the version does not have."""

    code = "evidence_required"


class TokenNotFound(NotFound):
    code = "token_not_found"


class PolicyNotFound(NotFound):
    code = "policy_not_found"


class InsecureConfiguration(LorryError):
    """(startup only) A server on a non-loopback address without an admin token."""

    code = "insecure_configuration"
    status_code = 503


class XetUnavailable(NotFound):
    """A Hub client asked for Xet storage, which is off (``LORRY_HUB_XET=false``)."""

    code = "xet_unavailable"


class UnsupportedConfiguration(LorryError):
    """(startup only) Settings that this backend cannot serve, such as several server
    processes on SQLite."""

    code = "unsupported_configuration"
    status_code = 503


class WebhookNotFound(NotFound):
    code = "webhook_not_found"


class DeliveryNotFound(NotFound):
    code = "delivery_not_found"


class DeploymentNotFound(NotFound):
    code = "deployment_not_found"


class DestinationRefused(InvalidInput):
    """A webhook or deployment URL that Lorry will not send to: a private, loopback or
    link-local address the operator did not allow (SSRF), or not http(s)."""

    code = "destination_refused"
