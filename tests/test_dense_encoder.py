from __future__ import annotations

import numpy as np
import pytest

from rag_splade import DenseEncoder
from rag_splade.encoders.dense import prefixes_for


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cl-nagoya/ruri-v3-130m", ("検索クエリ: ", "検索文書: ")),
        ("cl-nagoya/ruri-v3-310m", ("検索クエリ: ", "検索文書: ")),
        ("intfloat/multilingual-e5-large", ("query: ", "passage: ")),
        ("some/other-model", None),
    ],
)
def test_prefixes_from_model_name(name, expected) -> None:
    assert prefixes_for(name) == expected


def test_unit_norm_float32(random_dense) -> None:
    out = random_dense.encode_documents(["梅雨は日本の気象現象。", "石油は炭化水素。"])
    assert out.dtype == np.float32 and out.shape == (2, random_dense.dimension)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert random_dense.encode_queries([]).shape == (0, random_dense.dimension)


def test_prefixes_are_applied(random_dense_path) -> None:
    plain = DenseEncoder(str(random_dense_path), device="cpu")
    assert plain.query_prefix == "" and plain.document_prefix == ""
    prefixed = DenseEncoder(
        str(random_dense_path),
        device="cpu",
        query_prefix="検索クエリ: ",
        document_prefix="検索文書: ",
    )
    text = ["梅雨前線"]
    assert np.allclose(plain.encode_queries(text), plain.encode_documents(text))
    assert not np.allclose(prefixed.encode_queries(text), prefixed.encode_documents(text))
    # the query path is exactly the plain encoding of prefix + text
    assert np.allclose(
        prefixed.encode_queries(text), plain.encode_queries(["検索クエリ: 梅雨前線"]), atol=1e-6
    )


def test_bad_input(random_dense) -> None:
    with pytest.raises(TypeError, match="single str"):
        random_dense.encode_queries("梅雨")  # type: ignore[arg-type]
