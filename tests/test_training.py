"""SPLADE fine-tuning: data readers, leakage-free splits, mining, training mechanics,
the `rag-splade train` command and model fingerprints (tiny lexical models, seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag_splade import DenseEncoder, SpladeEncoder
from rag_splade.fingerprint import model_fingerprint, sparse_fingerprint
from rag_splade.sample import sample_path
from rag_splade.training import (
    PairSet,
    TrainConfig,
    TrainingExample,
    TrainingPair,
    leaked_passages,
    mine_hard_negatives,
    read_pairs,
    read_squad_pairs,
    separate_eval,
    split_by_passage,
    train_splade,
    training_examples,
)
from rag_splade.training.data import normalize

pytest.importorskip("datasets")
pytest.importorskip("accelerate")


@pytest.fixture(scope="module")
def sample_pairs() -> PairSet:
    return read_squad_pairs(sample_path())


# -- data -----------------------------------------------------------------------------------
def test_squad_pairs_match_the_evaluation_reader(sample_pairs: PairSet) -> None:
    from rag_splade.pipelines.evaluate import load_squad

    ds = load_squad(sample_path())
    assert len(sample_pairs.pairs) == len(ds.queries)
    assert set(sample_pairs.corpus) == set(ds.corpus)
    for p in sample_pairs.pairs:
        assert ds.qrels[p.query_id] == {p.passage_id: 1}
        title = ds.corpus[p.passage_id].title
        assert p.passage == f"{title}\n{ds.corpus[p.passage_id].text}"
        assert p.answers and all(a in p.passage for a in p.answers)


def test_jsonl_and_csv_pairs_with_named_fields(tmp_path: Path) -> None:
    rows = [
        {"q": "富士山の高さは？", "text": "富士山は日本一高い山である。", "a": "日本一"},
        {"q": "日本一の山は？", "text": "富士山は日本一高い山である。", "a": ["富士山"]},
        {"q": "琵琶湖はどこ？", "text": "琵琶湖は滋賀県にある。", "a": "滋賀県"},
    ]
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    ps = read_pairs(jsonl, query_field="q", passage_field="text", answer_field="a")
    assert [p.query for p in ps.pairs] == [r["q"] for r in rows]
    assert len(ps.corpus) == 2  # the same passage twice is one passage
    assert ps.pairs[0].passage_id == ps.pairs[1].passage_id
    assert ps.pairs[1].answers == ("富士山",)
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text("q,text\n" + "\n".join(f"{r['q']},{r['text']}" for r in rows) + "\n")
    from_csv = read_pairs(csv_file, query_field="q", passage_field="text")
    assert [p.passage_id for p in from_csv.pairs] == [p.passage_id for p in ps.pairs]


def test_a_missing_field_names_the_line_and_the_fields(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"query": "a", "passage": "b"}\n{"question": "c", "passage": "d"}\n')
    with pytest.raises(
        ValueError, match=r"pairs.jsonl:2: field 'query'.*\['passage', 'question'\]"
    ):
        read_pairs(path)
    (tmp_path / "pairs.txt").write_text("x\n")
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_pairs(tmp_path / "pairs.txt")


def test_beir_folders_through_the_evaluation_reader(tmp_path: Path) -> None:
    import argparse

    from rag_splade.pipelines.evaluate import load_squad, write_beir
    from rag_splade.pipelines.train import load_pairs

    folder = write_beir(load_squad(sample_path()), tmp_path / "beir")
    args = argparse.Namespace(format="auto", split="test")
    ps = load_pairs(folder, args)
    assert len(ps.pairs) == 227 and len(ps.corpus) == 64


# -- splits ---------------------------------------------------------------------------------
def test_the_held_out_split_shares_no_passage_with_training(sample_pairs: PairSet) -> None:
    split = split_by_passage(sample_pairs, 0.25, seed=7)
    trained = {p.passage_id for p in split.train.pairs}
    held = {p.passage_id for p in split.heldout.pairs}
    assert trained and held and not trained & held
    assert not leaked_passages(split)
    assert not held & set(split.train.corpus)  # not even a mining candidate
    assert len(split.train.pairs) + len(split.heldout.pairs) == len(sample_pairs.pairs)
    assert 0.15 < len(held) / len(sample_pairs.passage_ids) < 0.35
    again = split_by_passage(sample_pairs, 0.25, seed=7)
    assert [p.query_id for p in again.heldout.pairs] == [p.query_id for p in split.heldout.pairs]


def test_duplicate_passages_fall_on_one_side() -> None:
    pairs = [
        TrainingPair(f"q{i}", f"質問{i}", f"p{i}", "同じ本文。" if i < 2 else f"本文{i}。")
        for i in range(10)
    ]
    for seed in range(10):
        split = split_by_passage(PairSet("dup", pairs), 0.3, seed=seed)
        assert not leaked_passages(split)
        sides = {p.query_id for p in split.heldout.pairs}
        assert ("q0" in sides) == ("q1" in sides)


def test_a_separate_eval_file_drops_leaking_training_pairs(sample_pairs: PairSet) -> None:
    heldout = PairSet("eval", sample_pairs.pairs[:10])
    split = separate_eval(sample_pairs, heldout)
    held = {normalize(p.passage) for p in heldout.pairs}
    assert split.dropped > 0
    assert all(normalize(p.passage) not in held for p in split.train.pairs)
    assert not leaked_passages(split)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, True])
def test_bad_eval_fraction(sample_pairs: PairSet, fraction: float) -> None:
    with pytest.raises(ValueError, match="eval_fraction must be a number between 0 and 1"):
        split_by_passage(sample_pairs, fraction)


# -- mining ---------------------------------------------------------------------------------
def test_mining_excludes_positives_duplicates_and_answers(
    sample_pairs: PairSet, splade: SpladeEncoder, dense: DenseEncoder, tmp_path: Path
) -> None:
    # A copy of one positive under another id: a duplicate, never a negative.
    first = sample_pairs.pairs[0]
    corpus = dict(sample_pairs.corpus)
    corpus["copy-of-first"] = first.passage
    pairs = PairSet("mine", sample_pairs.pairs[:40], corpus)
    cache = tmp_path / "negatives.json"
    mined = mine_hard_negatives(pairs, splade, dense, negatives=3, depth=20, cache=cache)
    assert set(mined.negatives) == {p.query_id for p in pairs.pairs}
    positives_of: dict[str, set[str]] = {}
    for p in pairs.pairs:
        positives_of.setdefault(p.query, set()).add(p.passage_id)
    for p in pairs.pairs:
        chosen = mined.negatives[p.query_id]
        assert len(chosen) == 3 == len(set(chosen))
        assert not set(chosen) & positives_of[p.query]
        for pid in chosen:
            text = normalize(corpus[pid])
            assert text != normalize(p.passage)
            assert not any(normalize(a) in text for a in p.answers)
    assert "copy-of-first" not in mined.negatives[first.query_id]
    assert mined.stats.skipped_positive > 0 and mined.stats.skipped_answer > 0
    assert mined.stats.skipped_duplicate > 0
    assert mined.stats.mined > 0  # the lexical model finds near misses; not all random
    again = mine_hard_negatives(pairs, splade, dense, negatives=3, depth=20, cache=cache)
    assert again.cached and again.negatives == mined.negatives
    other = mine_hard_negatives(pairs, splade, dense, negatives=2, depth=20, cache=cache)
    assert not other.cached  # other settings: mined again


# -- training -------------------------------------------------------------------------------
def _config(base: Path, out: Path, **kw: object) -> TrainConfig:
    settings: dict = dict(
        base_model=str(base), output_dir=out, batch_size=8, learning_rate=3e-3,
        document_max_length=128, logging_steps=1, device="cpu", progress=False,
        query_regularizer=0.0, document_regularizer=0.0, warmup_ratio=0.0,
    )  # fmt: skip
    settings.update(kw)
    return TrainConfig(**settings)


def test_training_lowers_the_loss_and_saves_a_loadable_model(
    sample_pairs: PairSet, random_splade_path: Path, random_splade: SpladeEncoder, tmp_path: Path
) -> None:
    # The random model ranks at random (the lexical one already gets these in-batch choices
    # right, its loss is about 0); on one fixed set of 24 questions seen many times, the
    # loss must fall well below where it starts.
    seen: set[str] = set()
    examples = []
    for p in sample_pairs.pairs:
        if p.passage_id not in seen and len(examples) < 24:
            seen.add(p.passage_id)
            examples.append(TrainingExample(p.query, p.passage))
    out = tmp_path / "model"
    result = train_splade(_config(random_splade_path, out, max_steps=24), examples)
    assert result.steps == 24 and result.precision == "fp32"
    losses = [h["loss"] for h in result.history]
    assert np.mean(losses[-6:]) < 0.5 * np.mean(losses[:3]), losses
    assert all(h["query_dims"] > 0 and h["document_dims"] > 0 for h in result.history)
    tuned = SpladeEncoder(str(out), device="cpu")
    assert tuned.vocab_size == random_splade.vocab_size
    assert sparse_fingerprint(tuned) != sparse_fingerprint(random_splade)


def test_resume_continues_from_the_last_checkpoint(
    sample_pairs: PairSet, lexical_splade_path: Path, tmp_path: Path
) -> None:
    examples = training_examples(PairSet("few", sample_pairs.pairs[:40]))
    out = tmp_path / "model"
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_splade(_config(lexical_splade_path, out, max_steps=2, resume=True), examples)
    first = train_splade(_config(lexical_splade_path, out, max_steps=2, save_steps=2), examples)
    assert first.steps == 2 and (out / "checkpoints" / "checkpoint-2").is_dir()
    resumed = train_splade(
        _config(lexical_splade_path, out, max_steps=3, save_steps=2, resume=True), examples
    )
    assert resumed.steps == 3
    assert [h["step"] for h in resumed.history] == [3.0]  # steps 1-2 were not run again


def test_batches_never_hold_a_positive_twice_or_as_another_negative() -> None:
    from datasets import Dataset

    from rag_splade.training.sampler import DistinctPositivesBatchSampler

    rng = np.random.default_rng(0)
    positive = [f"p{rng.integers(12)}" for _ in range(60)]
    # mining never makes a question's positive its own negative
    negative = [f"p{(int(p[1:]) + 1 + rng.integers(11)) % 12}" for p in positive]
    ds = Dataset.from_dict({"query": [f"q{i}" for i in range(60)], "positive": positive,
                            "negative_1": negative})  # fmt: skip
    sampler = DistinctPositivesBatchSampler(ds, batch_size=4, drop_last=False)
    seen = []
    for batch in sampler:
        pos = [positive[i] for i in batch]
        assert len(set(pos)) == len(pos)
        assert not set(pos) & {negative[i] for i in batch}
        seen += batch
    assert sorted(seen) == list(range(60))


def test_bad_training_settings_are_named(lexical_splade_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="learning_rate must be a number > 0"):
        _config(lexical_splade_path, tmp_path, learning_rate=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        _config(lexical_splade_path, tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="same number of negatives"):
        train_splade(
            _config(lexical_splade_path, tmp_path),
            [TrainingExample("a", "b", ("c",)), TrainingExample("d", "e")],
        )


# -- the command ----------------------------------------------------------------------------
def test_the_train_command_end_to_end(
    lexical_splade_path: Path, lexical_dense_path: Path, tmp_path: Path, capsys
) -> None:
    from rag_splade.pipelines.cli import main

    out = tmp_path / "tuned"
    argv = ["train", str(sample_path()), "--output", str(out), "--base-model",
            str(lexical_splade_path), "--dense-model", str(lexical_dense_path),
            "--device", "cpu", "--max-steps", "3", "--batch-size", "8", "--lr", "3e-3",
            "--negatives", "1", "--doc-max-length", "128", "--eval-fraction", "0.2",
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| fine-tuned |" in printed and "active dims / query" in printed
    for name in ("README.md", "training.json", "eval.md", "eval.json", "eval.png",
                 "negatives.json", "config.json", "model.safetensors"):  # fmt: skip
        assert (out / name).is_file(), name
    report = json.loads((out / "eval.json").read_text())
    assert [r["name"] for r in report["runs"]] == ["base", "fine-tuned"]
    assert set(report["runs"][1]["p_values"]) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
    card = (out / "README.md").read_text()
    assert str(lexical_splade_path) in card and "Before and after" in card
    facts = json.loads((out / "training.json").read_text())
    assert facts["run"]["steps"] == 3 and facts["data"]["hard negatives per question"] == 1
    tuned = SpladeEncoder(str(out), device="cpu")
    passages = [p.passage for p in read_squad_pairs(sample_path()).pairs[:5]]
    for v in tuned.encode_documents(passages):
        assert 0 < len(v.indices) < tuned.vocab_size / 10  # still sparse after training
        assert np.all(v.values > 0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--eval-fraction", "1.5"], "eval_fraction must be a number between 0 and 1"),
        (["--lr", "0"], "learning_rate must be a number > 0"),
        (["--format", "jsonl"], "field 'query' must be a non-empty string"),
    ],
)
def test_the_train_command_says_what_is_wrong(
    extra: list[str], message: str, tmp_path: Path, capsys
) -> None:
    from rag_splade.pipelines.cli import main

    data = tmp_path / "pairs.jsonl"
    data.write_text('{"question": "a", "passage": "b"}\n')
    source = str(data) if "--format" in extra else str(sample_path())
    assert main(["train", source, "--output", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rag-splade train: ") and message in err
    assert not (tmp_path / "out").exists()  # nothing written, no model loaded


# -- fingerprints ---------------------------------------------------------------------------
def test_fingerprint_follows_weights_not_names_or_dtype(
    lexical_splade_path: Path, random_splade_path: Path, tmp_path: Path
) -> None:
    import shutil

    import torch
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(str(lexical_splade_path))
    fp = model_fingerprint(model)
    assert fp.startswith("sha256:") and len(fp) == 7 + 64
    copy = tmp_path / "copy"
    shutil.copytree(lexical_splade_path, copy)
    assert model_fingerprint(AutoModelForMaskedLM.from_pretrained(str(copy))) == fp
    assert model_fingerprint(model.to(torch.bfloat16)) == fp
    other = AutoModelForMaskedLM.from_pretrained(str(random_splade_path))
    assert model_fingerprint(other) != fp
    with torch.no_grad():
        model.float().bert.encoder.layer[0].output.dense.bias[0] += 0.5
    assert model_fingerprint(model) != fp


def test_an_index_refuses_another_sparse_model_and_says_to_reindex(
    splade: SpladeEncoder,
    random_splade: SpladeEncoder,
    dense: DenseEncoder,
    tmp_path: Path,
) -> None:
    from rag_splade import Document, EdgeStore, HybridIndex
    from rag_splade.store.edge import MANIFEST

    path = tmp_path / "index"
    assert splade.vocab_size == random_splade.vocab_size  # the vocabulary cannot tell them apart
    with HybridIndex(splade, dense, EdgeStore(path)) as index:
        index.add([Document(id="d", text="富士山は日本一高い山である。")])
    manifest_file = path / MANIFEST
    manifest = json.loads(manifest_file.read_text())
    assert manifest["sparse_fingerprint"] == sparse_fingerprint(splade)
    with HybridIndex(splade, dense, EdgeStore(path)) as index:  # the same model opens it
        assert index.count() == 1
    with pytest.raises(ValueError, match=r"another SPLADE model.*rag-splade ingest --reindex"):
        HybridIndex(random_splade, dense, EdgeStore(path))
    # An index written before fingerprints were recorded opens as before.
    manifest = json.loads(manifest_file.read_text())  # the clean close above rewrote its checksums
    del manifest["sparse_fingerprint"]
    manifest_file.write_text(json.dumps(manifest))
    with HybridIndex(random_splade, dense, EdgeStore(path)) as index:
        assert index.count() == 1
