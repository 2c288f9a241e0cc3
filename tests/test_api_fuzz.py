"""Property-based fuzz of the OpenAPI schema: whatever the input, never a 5xx."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from rag_splade import Document, EdgeStore, HybridIndex  # noqa: E402
from rag_splade.api.app import create_app  # noqa: E402
from rag_splade.api.errors import TEI_PATHS  # noqa: E402
from tests.api_support import api_documents, service_settings  # noqa: E402

EXAMPLES_PER_OPERATION = 60


@pytest.fixture(scope="module")
def api_schema(splade, dense, lexical_splade_path, lexical_dense_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    index = HybridIndex(splade, dense, EdgeStore(root / "index"))
    index.add(Document(**d) for d in api_documents(6))
    settings = service_settings(lexical_splade_path, lexical_dense_path, root / "unused")
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(settings, index=index))


def test_no_server_errors(api_schema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/search", "/v1/documents", "/readyz"}
    seen: dict[str, set[int]] = {}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,  # the same examples on every run: a failure reproduces
            suppress_health_check=list(HealthCheck),
        )
        def never_5xx(case) -> None:
            response = case.call()
            seen.setdefault(case.operation.label, set()).add(response.status_code)
            assert response.status_code < 500, (case.operation.label, response.text[:500])
            if response.status_code >= 400:
                body = response.json()
                if case.operation.path in TEI_PATHS:  # TEI's error body
                    assert body["error"] and body["error_type"]
                else:
                    assert body["error"] and body["message"]

        never_5xx()
    # the fuzz reached the service, not just the validation layer
    assert 200 in seen["POST /v1/search"] and 422 in seen["POST /v1/search"]
