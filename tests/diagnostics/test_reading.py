"""The report's plain-language reading: per-field verdicts from IA and RankMe against the random baseline, and advice
that depends on SE / ME and on whether anything looks collapsed."""

import json

import numpy as np
import pytest

from tf_multiembed.diagnostics import abundance
from tf_multiembed.diagnostics.field_analysis import analyze_embeddings
from tf_multiembed.diagnostics.report import STUDY_FINDINGS, collapse_reading, field_verdict, write_report
from tf_multiembed.diagnostics.tables import EmbeddingTables

ROWS, WIDTH = 300, 8


def _fields(num_sets: int = 1):
    rng = np.random.default_rng(5)
    width = WIDTH * num_sets
    rank_one = np.outer(rng.standard_normal(ROWS), rng.standard_normal(width))
    left, _ = np.linalg.qr(rng.standard_normal((ROWS, width // 2)))
    right, _ = np.linalg.qr(rng.standard_normal((width, width // 2)))
    half_rank = left @ right.T  # width/2 equal singular values
    random = abundance.random_matrix(ROWS, width, seed=11)
    weights = np.concatenate([rank_one, half_rank, random]).astype(np.float32)
    return EmbeddingTables(weights, (ROWS, ROWS, ROWS), num_sets=num_sets, embedding_dim=WIDTH,
                           field_names=("flat", "half", "noise"))


def test_verdicts_per_field():
    diagnostics = analyze_embeddings(_fields())
    reading = collapse_reading(diagnostics)
    by_field = {item["field"]: item for item in reading["fields"]}
    assert [by_field[name]["verdict"] for name in ("flat", "half", "noise")] == [
        "collapsed", "partly collapsed", "near random"]
    # The ratios are the report's numbers divided by the same-shape random baseline.
    assert by_field["half"]["ia_ratio"] == pytest.approx(4.0 / diagnostics.random_concat_abundance[1])
    assert by_field["half"]["rankme_ratio"] == pytest.approx(4.0 / diagnostics.random_concat_effective_rank[1])
    assert reading["counts"] == {"collapsed": 1, "partly collapsed": 1, "near random": 1, "undefined": 0}
    assert "Collapsed: flat." in reading["advice"] and "Partly collapsed: half." in reading["advice"]
    assert any("--embedding=me" in line for line in reading["advice"])  # SE: try ME first
    assert reading["advice"][-1] == STUDY_FINDINGS and "nothing beat SE" in STUDY_FINDINGS


def test_advice_for_me_and_for_nothing_collapsed():
    me_reading = collapse_reading(analyze_embeddings(_fields(num_sets=2)))
    assert any("already a multi-embedding model" in line for line in me_reading["advice"])
    noise = EmbeddingTables(abundance.random_matrix(ROWS, WIDTH, seed=3), (ROWS,), num_sets=1, embedding_dim=WIDTH,
                            field_names=("noise",))
    advice = collapse_reading(analyze_embeddings(noise))["advice"]
    assert any(line.startswith("Nothing here looks collapsed") for line in advice)
    assert field_verdict(float("nan"), float("nan")) == "undefined"


def test_the_report_carries_the_reading(tmp_path):
    write_report({"SE": _fields()}, tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    assert "### What this says" in summary and "- Collapsed: flat." in summary
    reading = json.loads((tmp_path / "diagnostics.json").read_text())["SE"]["reading"]
    assert [item["verdict"] for item in reading["fields"]] == ["collapsed", "partly collapsed", "near random"]
