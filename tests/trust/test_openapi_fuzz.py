"""schemathesis against the live service's OpenAPI document: no operation answers 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from registry import db
from registry.config import Settings
from tests.support.factories import build_lora_adapter, build_tiny_llama
from tests.support.files import directory_files
from tests.support.live import LiveServer, start_live_server
from tests.support.rest import push_ok

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live registry with one adapter (versions 1 and 2, alias production)."""
    root = tmp_path_factory.mktemp("openapi-fuzz")
    settings_ = Settings(home=root / "home")
    db.upgrade(settings_)
    server = start_live_server(settings_)
    adapter = build_lora_adapter(build_tiny_llama(root / "base"), root / "adapter")
    files = directory_files(adapter)
    with httpx.Client(base_url=server.url) as http:
        push_ok(http, "acme/sql-lora", files, alias="production")
        push_ok(http, "acme/sql-lora", {**files, "notes.txt": b"v2"})
    try:
        yield server
    finally:
        server.stop()


MAX_EXAMPLES = {GenerationMode.POSITIVE: 10, GenerationMode.NEGATIVE: 6}
"""Per operation: valid requests, then invalid ones (bounded to keep CI fast)."""


def test_no_operation_answers_a_server_error(fuzzed_server: LiveServer) -> None:
    """Every operation of the live OpenAPI document, fed generated valid and invalid data."""
    api = schemathesis.openapi.from_url(f"{fuzzed_server.url}/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in api.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) > 20
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=MAX_EXAMPLES[mode],
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
                phases=[Phase.generate],
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: schemathesis.Case) -> None:
                response = case.call(base_url=fuzzed_server.url, timeout=30)
                if response.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.formatted_path} {case.query} -> "
                        f"{response.status_code}: {response.text[:300]}"
                    )

            try:
                call()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no valid request"
    assert failures == [], "\n".join(failures[:20])


def test_the_openapi_document_lists_the_trust_operations(fuzzed_server: LiveServer) -> None:
    paths = httpx.get(f"{fuzzed_server.url}/openapi.json").json()["paths"]
    for path in (
        "/api/v1/tokens",
        "/api/v1/policies",
        "/api/v1/audit/verify",
        "/api/v1/audit/checkpoints",
        "/api/v1/gc",
        "/api/v1/repos/{namespace}/{name}/aliases/{alias}/at",
    ):
        assert path in paths, path
