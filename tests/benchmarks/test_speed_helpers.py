"""The benchmarks' shared helpers (benchmarks/common.py) and the side-by-side reference scripts: paired
ratios and rounds by hand, the deliberate load, the reference's classes and hyper-parameters (with a stand-in
checkout, so torch is not needed), and the usage errors."""

import pathlib
import subprocess
import sys
import textwrap
import time

import pytest

from benchmarks import common
from benchmarks.speed import reference_step

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


def test_paired_ratio_by_hand():
    assert common.paired_ratio([4.0, 3.0, 9.0], [2.0, 3.0, 3.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}
    with pytest.raises(ValueError, match="same number"):
        common.paired_ratio([1.0], [1.0, 2.0])


def test_combine_rounds_takes_medians_and_pairs_each_round():
    def row(mode, speed):
        return {"model": "me_dcnv2_10x10", "mode": mode, "examples_per_s": speed, "peak_rss_mb": speed / 10}

    rounds = [[row("sparse", 6000.0), row("dense", 4000.0)],
              [row("dense", 5000.0), row("sparse", 5000.0)],  # the order of the modes changes between rounds
              [row("sparse", 3000.0), row("dense", 2000.0)]]
    sparse, dense = common.combine_rounds(rounds, batch_size=2000)
    assert sparse["rounds_examples_per_s"] == [6000.0, 5000.0, 3000.0] and sparse["examples_per_s"] == 5000.0
    assert sparse["step_s"] == pytest.approx(0.4) and sparse["peak_rss_mb"] == 500.0  # the median round's row
    # Paired per round: 1.5, 1.0, 1.5 (the medians alone would give 5000 / 4000 = 1.25).
    assert sparse["sparse_over_dense"] == {"median": 1.5, "min": 1.0, "max": 1.5}
    assert dense["examples_per_s"] == 4000.0 and "sparse_over_dense" not in dense


def test_scheduling_conditions_say_how_children_ran():
    assert common.scheduling_conditions(0, "spin", True) == "children isolated, no added load"
    assert common.scheduling_conditions(2, "memory", False) == (
        "2 memory busy loop(s) beside each measurement, children not isolated")


def _children_cpu_seconds(pids):
    return sum(sum(int(field) for field in pathlib.Path(f"/proc/{pid}/stat").read_text().split()[13:15])
               for pid in pids)


@pytest.mark.parametrize("kind", sorted(common.LOADS))
def test_cpu_load_runs_busy_loops_only_inside_the_block(kind):
    with common.cpu_load(2, kind) as loops:
        pids = [loop.pid for loop in loops]
        start = _children_cpu_seconds(pids)
        time.sleep(1.5)
        assert all(loop.poll() is None for loop in loops)
        assert _children_cpu_seconds(pids) > start  # they burn CPU time (clock ticks)
    assert all(loop.poll() is not None for loop in loops)
    with pytest.raises(ValueError, match="kind must be one of"):
        with common.cpu_load(1, "disk"):
            pass


def _stand_in_checkout(root: pathlib.Path) -> pathlib.Path:
    """A folder shaped like thuml/Multi-Embedding whose classes record their arguments."""
    recorder = textwrap.dedent("""
        class _Recorded:
            def __init__(self, field_dims, **kwargs):
                self.name, self.field_dims, self.kwargs = type(self).__name__, list(field_dims), kwargs
        """)
    files = {"mwd.py": ["DNNModel", "MultiDNNModel"], "dcnv2.py": ["CrossNetworkV2Model"],
             "awesome.py": ["MultiDCNnew2"], "xdfm.py": ["XDeepFM", "MultiXDeepFM"]}
    model = root / "torchfm" / "model"
    model.mkdir(parents=True)
    (root / "torchfm" / "__init__.py").write_text("")
    (model / "__init__.py").write_text("")
    for name, classes in files.items():
        (model / name).write_text(recorder + "".join(f"\nclass {cls}(_Recorded):\n    pass\n" for cls in classes))
    return root


def test_reference_classes_and_hyper_parameters_follow_the_reference_main(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_stand_in_checkout(tmp_path / "checkout")))
    for module in [name for name in sys.modules if name == "torchfm" or name.startswith("torchfm.")]:
        monkeypatch.delitem(sys.modules, module)
    dims = [3, 4]
    built = {(model, embedding): reference_step.reference_model(model, embedding, 10, dims)
             for model in ("dnn", "dcnv2", "xdeepfm") for embedding in ("se", "me")}
    mlp = {"mlp_dims": (400, 400), "dropout": 0.2}
    expected = {
        ("dnn", "se"): ("DNNModel", {"embed_dim": 100, **mlp}),
        ("dnn", "me"): ("MultiDNNModel", {"embed_dims": [10] * 10, **mlp}),
        ("dcnv2", "se"): ("CrossNetworkV2Model", {"embed_dim": 100, "num_layers": 4, **mlp}),
        ("dcnv2", "me"): ("MultiDCNnew2", {"embed_dims": [10] * 10, "num_layers": 4, **mlp}),
        ("xdeepfm", "se"): ("XDeepFM", {"embed_dim": 100, "cross_layer_sizes": (16, 16), **mlp}),
        ("xdeepfm", "me"): ("MultiXDeepFM", {"embed_dims": [10] * 10, "cross_layer_sizes": (16, 16), **mlp}),
    }
    for key, (name, kwargs) in expected.items():
        assert (built[key].name, built[key].kwargs, built[key].field_dims) == (name, kwargs, dims), key
    with pytest.raises(ValueError, match="no reference class for model 'ipnn'"):
        reference_step.reference_model("ipnn", "se", 1, dims)


def test_side_by_side_refuses_a_missing_or_wrong_checkout(tmp_path):
    script = str(BENCHMARKS / "speed" / "reference_side_by_side.py")
    missing = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "--reference_checkout and --reference_python are required" in missing.stderr
    wrong = subprocess.run([sys.executable, script, f"--reference_checkout={tmp_path}",
                            f"--reference_python={sys.executable}"], capture_output=True, text=True, timeout=120)
    assert wrong.returncode != 0 and "has no torchfm/ folder" in wrong.stderr
    loaded = subprocess.run([sys.executable, str(BENCHMARKS / "speed" / "throughput.py"), "--load=1", "--nowrite"],
                            capture_output=True, text=True, timeout=120)
    assert loaded.returncode != 0 and "--load needs --noisolate" in loaded.stderr
