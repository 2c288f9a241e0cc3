from __future__ import annotations

import numpy as np
import pytest

from rag_splade import Document, SparseVector


def test_sparse_vector_sorts_and_types() -> None:
    v = SparseVector(np.array([9, 2, 5]), np.array([0.5, 1.5, 2.5], dtype=np.float64))
    assert v.indices.dtype == np.int32 and v.values.dtype == np.float32
    assert v.indices.tolist() == [2, 5, 9]
    assert v.values.tolist() == [1.5, 2.5, 0.5]
    assert len(v) == 3
    with pytest.raises(ValueError):
        v.indices[0] = 1  # frozen arrays


@pytest.mark.parametrize(
    ("indices", "values", "message"),
    [([1, 2], [1.0], "as many indices"), ([1, 1], [1.0, 2.0], "unique"), ([-1], [1.0], ">= 0")],
)
def test_sparse_vector_rejects_bad_input(indices, values, message) -> None:
    with pytest.raises(ValueError, match=message):
        SparseVector(np.array(indices), np.array(values))


def test_dot_top_k_and_qdrant() -> None:
    a = SparseVector.from_pairs({1: 2.0, 3: 1.0, 7: 4.0})
    b = SparseVector.from_pairs({3: 3.0, 7: 0.5, 8: 9.0})
    assert a.dot(b) == pytest.approx(3.0 + 2.0)
    top = a.top_k(2)
    assert top.as_dict() == {1: 2.0, 7: 4.0}
    q = a.to_qdrant()
    assert q.indices == [1, 3, 7] and q.values == [2.0, 1.0, 4.0]
    with pytest.raises(ValueError, match="top_k"):
        a.top_k(0)
    assert a.drop_below(2.0).as_dict() == {1: 2.0, 7: 4.0}  # ties kept
    assert a.drop_below(0.5) is a and len(a.drop_below(5.0)) == 0
    with pytest.raises(ValueError, match="min_weight must be > 0"):
        a.drop_below(0)


def test_document_validation() -> None:
    with pytest.raises(ValueError, match=r"Document\.id"):
        Document(id="  ", text="x")
    with pytest.raises(TypeError, match=r"Document\.text"):
        Document(id="a", text=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="metadata"):
        Document(id="a", text="x", metadata=[1])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("doc_id", "says"),
    [
        ("a\u200bb", "does not show"),  # zero-width space: reads as "ab"
        ("a\u202eb", "does not show"),  # right-to-left override
        ("\ufeffa", "does not show"),
        ("a\u2028b", "breaks the"),
        ("a\u2029b", "breaks the"),
        ("..", "path segment"),
        (".", "path segment"),
        ("docs/../secret", "path segment"),
        ("docs/./a", "path segment"),
    ],
)
def test_a_new_id_is_visible_text_a_client_sends_unchanged(doc_id: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Document(id=doc_id, text="本文")


def test_ids_that_only_look_odd_are_kept() -> None:
    for doc_id in ("a..b", "docs/a.md", ".hidden", "東京/大阪", "v1.2/x..y", "a b"):
        assert Document(id=doc_id, text="本文").id == doc_id


def test_an_id_stored_before_the_rule_can_still_be_read_and_deleted() -> None:
    from rag_splade.checks import check_doc_id

    assert check_doc_id("a\u200bb") == "a\u200bb"  # get / delete take it
