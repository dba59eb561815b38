"""benchmarks/quality/scaling.py: the study end to end on MovieLens-100K (two models, two scales, one seed, one
epoch), its skip-on-repeat, the table arithmetic, the worker partition and bad input."""

import csv
import json
import pathlib
import subprocess
import sys

import pytest

from benchmarks.quality import scaling, scaling_report

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


def _study(ml100k_dir, out, data_dir, *extra):
    command = [sys.executable, str(BENCHMARKS / "quality" / "scaling.py"), "--dataset=movielens",
               f"--data_path={ml100k_dir}",
               f"--data_dir={data_dir}", "--models=dnn,dcnv2", "--scales=1,2", "--seeds=0", "--epochs=1",
               f"--out={out}", "--threads=2", *extra]
    output = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert output.returncode == 0, output.stderr[-3000:]
    return output.stdout


def test_study_end_to_end_writes_consistent_outputs_and_skips_finished_runs(ml100k_dir, tmp_path):
    out, data_dir = tmp_path / "study", tmp_path / "data"
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps([{"model": "dnn", "embedding": "se", "scale": 2, "mean": 0.77, "std": 0.002}]))
    _study(ml100k_dir, out, data_dir, f"--reference={reference}")
    rows = list(csv.DictReader(open(out / "runs.csv")))
    # SE 1x, SE 2x, ME 2x per model: ME 1x is SE 1x and is not trained twice.
    assert sorted((row["model"], row["embedding"], row["scale"]) for row in rows) == [
        ("dcnv2", "me", "2"), ("dcnv2", "se", "1"), ("dcnv2", "se", "2"),
        ("dnn", "me", "2"), ("dnn", "se", "1"), ("dnn", "se", "2")]
    by_key = {(row["model"], row["embedding"], row["scale"]): row for row in rows}
    assert all(0.5 < float(row["test_auc"]) < 1 and row["epochs"] == "1" for row in rows)
    assert by_key[("dnn", "se", "1")]["me_is_se"] == "yes" and by_key[("dnn", "me", "2")]["num_sets"] == "2"
    # IA of the [D_i, M*K] matrix is at most min(D_i, M*K) and grows with width here (random init, 1 epoch).
    assert 1 <= float(by_key[("dnn", "se", "1")]["ia_mean"]) <= 10 < float(by_key[("dnn", "se", "2")]["ia_mean"])
    rankme = {scale: float(by_key[("dnn", "se", scale)]["rankme_mean"]) for scale in ("1", "2")}
    assert 1 <= rankme["1"] <= 10 < rankme["2"]
    assert "### mean per-field RankMe" in (out / "table.md").read_text()
    table = (out / "table.md").read_text()
    me_dnn_row = next(line for line in table.splitlines() if line.startswith("| ME-dnn |"))
    assert f"{float(by_key[('dnn', 'se', '1')]['test_auc']):.4f} ± 0.0000 (= SE)" in me_dnn_row
    assert f"{float(by_key[('dnn', 'me', '2')]['test_auc']):.4f} ± 0.0000" in me_dnn_row
    fidelity = (out / "fidelity.md").read_text()
    assert f"{float(by_key[('dnn', 'se', '2')]['test_auc']) - 0.77:+.4f}" in fidelity
    for plot in ("auc_vs_scale.png", "ia_vs_scale.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "runs" / "dnn-se-1x-seed0" / "checkpoints").exists()  # finished runs drop checkpoints

    record = out / "runs" / "dnn-se-1x-seed0" / "record.json"
    before = record.stat().st_mtime_ns
    stdout = _study(ml100k_dir, out, data_dir)
    assert stdout.count("finished before, skipped") == 6 and record.stat().st_mtime_ns == before
    assert "6 of 6 planned runs finished (6 records in" in stdout
    # A smaller grid over the same folder counts its own runs, not every record there.
    stdout = _study(ml100k_dir, out, data_dir, "--models=dnn", "--scales=1", "--report_only")
    assert "1 of 1 planned runs finished (6 records in" in stdout


def test_table_cell_is_mean_and_population_std_by_hand():
    assert scaling_report.format_cell([0.70, 0.72, 0.74], seeds_asked=3) == "0.7200 ± 0.0163"  # sqrt(0.0008/3)
    assert scaling_report.format_cell([0.70, 0.72], seeds_asked=3) == "0.7100 ± 0.0100 (n=2)"
    assert scaling_report.format_cell([], seeds_asked=3) == "—"
    records = [{"model": "dnn", "embedding": "se", "scale": 1, "test_auc": value} for value in (0.70, 0.72, 0.74)]
    runs = scaling.planned_runs(["dnn"], [1], [0, 1, 2])
    table = scaling_report.markdown_table(records, runs, "test_auc")
    assert "| SE-dnn | 0.7200 ± 0.0163 |" in table and "| ME-dnn | 0.7200 ± 0.0163 (= SE) |" in table


def test_workers_cover_every_run_exactly_once():
    runs = scaling.planned_runs(["dnn", "dcnv2", "xdeepfm"], [1, 2, 4, 10], [0, 1, 2])
    assert len(runs) == 3 * 3 * 7 and len(set(runs)) == len(runs)
    shares = [scaling.worker_share(runs, 2, index) for index in range(2)]
    assert sorted(shares[0] + shares[1], key=runs.index) == runs and not set(shares[0]) & set(shares[1])
    with pytest.raises(ValueError, match=r"--worker_index must be in \[0, 2\), got 2"):
        scaling.worker_share(runs, 2, 2)


def test_bad_study_arguments_fail_with_a_clear_message():
    with pytest.raises(ValueError, match="unknown model.*'dnnn'"):
        scaling.planned_runs(["dnnn"], [1], [0])
    with pytest.raises(ValueError, match="scale factors must be integers >= 1, got \\[0\\]"):
        scaling.planned_runs(["dnn"], [0, 2], [0])
    with pytest.raises(ValueError, match="must not be empty"):
        scaling.planned_runs(["dnn"], [1], [])
    with pytest.raises(ValueError, match=r"--me_only names \['dnn'\], which --models \['dcnv2'\] does not have"):
        scaling.planned_runs(["dcnv2"], [1], [0], me_only=["dnn"])


def test_me_only_models_have_no_se_runs_and_their_se_rows_stay_empty():
    runs = scaling.planned_runs(["dcnv2", "heterogeneous"], [1, 4], [0, 1], me_only=["heterogeneous"])
    assert [run.name for run in runs if run.model == "heterogeneous"] == ["heterogeneous-me-4x-seed0",
                                                                           "heterogeneous-me-4x-seed1"]
    assert sum(run.model == "dcnv2" for run in runs) == 2 * 3
    records = [{"model": "heterogeneous", "embedding": "me", "scale": 4, "test_auc": value} for value in (0.7, 0.8)]
    table = scaling_report.markdown_table(records, runs, "test_auc")
    assert "| SE-heterogeneous | — | — |" in table and "| ME-heterogeneous | — | 0.7500 ± 0.0500 |" in table


def test_comparison_of_two_studies_by_hand():
    dense = [{"model": "dnn", "embedding": "me", "scale": 4, "test_auc": v} for v in (0.70, 0.72)]
    sparse = [{"model": "dnn", "embedding": "me", "scale": 4, "test_auc": v} for v in (0.71, 0.71)]
    sparse.append({"model": "dcnv2", "embedding": "se", "scale": 1, "test_auc": 0.7})  # only in one study: left out
    table = scaling_report.comparison_table(dense, sparse, "dense", "sparse").splitlines()
    assert len(table) == 3
    assert table[-1] == "| ME-dnn | 4x | 0.7100 ± 0.0100 | 0.7100 ± 0.0000 | +0.0000 | +0.0 |"


def test_fidelity_table_by_hand_with_log_loss_and_protocol_check():
    records = [{"model": "dnn", "embedding": "me", "scale": 10, "test_auc": auc, "test_logloss": loss,
                "shuffle": False, "embedding_updates": "dense"} for auc, loss in ((0.70, 0.58), (0.72, 0.60))]
    reference = {"protocol": {"shuffle": False, "embedding_updates": "dense"},
                 "results": [{"model": "dnn", "embedding": "me", "scale": 10, "mean": 0.69, "std": 0.005,
                              "logloss_mean": 0.57, "logloss_std": 0.02},
                             {"model": "dnn", "embedding": "se", "scale": 10, "mean": 0.7, "std": 0.01}]}
    lines = scaling_report.fidelity_table(records, reference).splitlines()
    assert lines[0] == "Our runs: fixed epoch order (--noshuffle), dense embedding updates."
    # AUC 0.71 ± 0.01 vs 0.69: +0.02 over the larger std 0.01; log loss 0.59 ± 0.01 vs 0.57 ± 0.02: +1.0.
    assert lines[-1] == ("| ME-dnn | 10x | 0.7100 ± 0.0100 | 0.6900 ± 0.0050 | +0.0200 | +2.0 | 0.5900 ± 0.0100 | "
                         "0.5700 ± 0.0200 | +1.0 |")
    assert len(lines) == 5  # SE-dnn 10x has no runs of ours: left out
    reshuffled = [dict(record, shuffle=True) for record in records]
    assert "Warning: the reference ran with shuffle=False" in scaling_report.fidelity_table(reshuffled, reference)


def test_reference_file_is_checked_with_a_message_naming_the_row(tmp_path):
    path = tmp_path / "reference.json"
    path.write_text(json.dumps([{"model": "dnn", "embedding": "se", "scale": 1, "mean": 0.7, "std": 0.01},
                                {"model": "dnn", "embedding": "both", "scale": "2x", "mean": 0.7}]))
    with pytest.raises(ValueError, match=r"reference.json, result row 1: `std` missing; `scale`='2x' is not a number; "
                                         r"`embedding`='both' is not \"se\" or \"me\""):
        scaling_report.load_reference(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read .*reference.json as JSON"):
        scaling_report.load_reference(path)


def test_committed_reference_covers_every_model_with_its_protocol():
    reference = scaling_report.load_reference(BENCHMARKS.parent / "docs" / "results" / "reference_ml100k.json")
    assert reference["protocol"]["shuffle"] is False and reference["protocol"]["embedding_updates"] == "dense"
    ten_x = {(row["model"], row["embedding"]) for row in reference["results"] if row["scale"] == 10}
    models = {"dnn", "dcnv2", "xdeepfm", "ipnn", "nfwfm", "finalmlp", "autoint"}
    assert ten_x == {(model, embedding) for model in models for embedding in ("se", "me")}


def test_ia_rankme_agreement_by_hand():
    rows = [("se", 1, 0, 5.0, 8.0), ("se", 4, 0, 15.0, 31.0), ("me", 4, 0, 16.0, 30.0),
            ("se", 4, 1, 14.0, 32.0), ("me", 4, 1, 17.0, 33.0)]
    records = [{"model": "dcnv2", "embedding": e, "scale": s, "seed": seed, "ia_mean": ia, "rankme_mean": r}
               for e, s, seed, ia, r in rows]
    agreement = scaling_report.metric_agreement(records)
    # IA ranks 0,2,3,1,4; RankMe ranks 0,2,1,3,4: d = 0,0,2,-2,0, rho = 1 - 6*8/(5*24) = 0.6.
    assert agreement["spearman"] == pytest.approx(0.6)
    # seed 0: IA says ME > SE, RankMe says ME < SE; seed 1: both say ME > SE.
    assert (agreement["pairs"], agreement["same_direction"]) == (2, 0.5)
