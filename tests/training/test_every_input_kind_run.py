"""`train.py` on a CSV with every new input kind (bucketized, embedded and dense numeric fields, a bag; docs/inputs.md):

- killed with SIGKILL mid-training and started again with the same command, it ends exactly where an uninterrupted
  run ends: same metrics, same weights, same served predictions;
- its export, given text where a float belongs, fails naming the feature (RequestBuilder, the REST decoder) or, in
  the signature itself, naming the input's position (what TensorFlow says; docs/serving.md);
- its artifacts give the collapse report of the embedded numeric fields (docs/diagnostics.md).
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import training_fixtures as tiny

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]
FIELDS = [{"name": "user"},
          {"name": "age", "kind": "numeric", "treatment": "bucketized", "boundaries": [25, 40]},
          {"name": "visits", "kind": "numeric", "treatment": "bucketized", "num_buckets": 3},
          {"name": "price", "kind": "numeric", "treatment": "embedded", "normalization": "log1p_standard"},
          {"name": "dwell", "kind": "numeric", "treatment": "embedded"},
          {"name": "rank", "kind": "numeric", "treatment": "embedded"},
          {"name": "score", "kind": "numeric", "treatment": "dense"},
          {"name": "tags", "kind": "bag", "separator": "|", "max_values": 4}]
HEADER = "click,user,age,visits,price,dwell,rank,score,tags"
ROWS, BATCH, EVERY = 1000, 32, 4
STEPS_PER_EPOCH = -(-int(ROWS * 0.8) // BATCH)  # the default random 8:1:1 split: 800 training rows -> 25 steps


def _rows(count=ROWS, seed=0):
    rng = np.random.default_rng(seed)
    lines = []
    for index in range(count):
        age, price, dwell, rank = int(rng.integers(15, 70)), rng.lognormal(2.0, 1.0), rng.normal(30, 10), rng.random()
        score = rng.random()
        tags = rng.choice(["rock", "jazz", "pop", "folk"], int(rng.integers(0, 6)))
        click = int(rng.random() < 0.1 + 0.3 * (age > 40) + 0.2 * (dwell > 35) + 0.2 * ("jazz" in tags))
        lines.append(",".join([str(click), f"u{int(rng.integers(0, 30))}", "" if index % 13 == 0 else str(age),
                               str(int(rng.poisson(3))), "" if index % 11 == 0 else f"{price:.3f}",
                               f"{dwell:.2f}", "" if index % 7 == 0 else f"{rank:.4f}",
                               "" if index % 17 == 0 else f"{score:.4f}", "|".join(tags)]))
    return lines


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same command twice: once uninterrupted, once SIGKILLed after its second step checkpoint and restarted."""
    root = tmp_path_factory.mktemp("new_inputs_runs")
    (root / "schema.json").write_text(json.dumps({"name": "every-kind", "label": {"column": "click"},
                                                  "fields": FIELDS}))
    (root / "clicks.csv").write_text("\n".join([HEADER] + _rows()) + "\n")
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "TF_CPP_MIN_LOG_LEVEL": "2",
                   "CUDA_VISIBLE_DEVICES": ""}
    environment.pop("TF_CONFIG", None)

    def command(name):
        return [sys.executable, str(REPOSITORY / "train.py"), "--dataset=csv", f"--schema={root / 'schema.json'}",
                f"--data_path={root / 'clicks.csv'}", f"--data_dir={root / 'cache'}", "--model=dcnv2", "--scale=2",
                "--epochs=3", "--patience=3", f"--batch_size={BATCH}", f"--checkpoint_every_steps={EVERY}",
                f"--model_dir={root / name}", f"--export_dir={root / ('export_' + name)}", "--export_name=clicks",
                "--verbose=0"]

    whole = subprocess.run(command("whole"), capture_output=True, text=True, timeout=300, cwd=root, env=environment)
    assert whole.returncode == 0, whole.stdout[-3000:] + whole.stderr[-3000:]

    killed = subprocess.Popen(command("resumed"), cwd=root, env=environment, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    killed_at = tiny.kill_after_checkpoint(killed, root / "resumed", 2 * EVERY)  # mid-epoch 1, past a checkpoint
    assert 0 < killed_at < 3 * STEPS_PER_EPOCH and not (root / "export_resumed").exists()
    resumed = subprocess.run(command("resumed"), capture_output=True, text=True, timeout=300, cwd=root,
                             env=environment)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout + resumed.stderr
    return root, killed_at


def _results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


def test_sigkill_then_the_same_command_equals_an_uninterrupted_run(runs):
    root, killed_at = runs
    whole, resumed = _results(root / "whole"), _results(root / "resumed")
    assert resumed["status"] == whole["status"] == "finished"
    assert resumed["resumes"] == [{"epoch": killed_at // STEPS_PER_EPOCH + 1, "step": killed_at % STEPS_PER_EPOCH}]
    # Validation and test metrics are computed from the weights alone: equal to the last bit. (The logged training
    # loss of the resumed epoch averages only the steps run after the restart, so it is not compared.)
    for name in ("val_auc", "val_logloss"):
        assert [entry[name] for entry in resumed["epochs"]] == [entry[name] for entry in whole["epochs"]], name
    assert resumed["best_epoch"] == whole["best_epoch"] and resumed["test"] == whole["test"]
    later = killed_at // STEPS_PER_EPOCH + 1  # the epochs after the resumed one ran whole in the second process
    assert [entry["loss"] for entry in resumed["epochs"][later:]] == \
        [entry["loss"] for entry in whole["epochs"][later:]]
    assert tiny.latest_checkpoint_step(root / "resumed") == tiny.latest_checkpoint_step(root / "whole") \
        == 3 * STEPS_PER_EPOCH

    # The exports: every variable (embedding sets, numeric vectors, cross layers, batch-norm statistics) bit-identical,
    # and the same probabilities for raw rows through serving_default.
    (whole_version,) = (root / "export_whole" / "clicks").iterdir()
    (resumed_version,) = (root / "export_resumed" / "clicks").iterdir()
    first, second = tf.saved_model.load(str(whole_version)), tf.saved_model.load(str(resumed_version))
    assert sorted(first.model_variables) == sorted(second.model_variables)
    assert any("numeric_embedding" in name for name in first.model_variables)
    for name, variable in first.model_variables.items():
        np.testing.assert_array_equal(variable.numpy(), second.model_variables[name].numpy(), err_msg=name)
    lines = _rows(40, seed=5)
    columns = dict(zip(HEADER.split(",")[1:], zip(*[line.split(",")[1:] for line in lines])))
    from tf_multiembed.data import Schema, raw_features_from_cells

    schema = Schema.from_file(root / "schema.json")
    raw = {name: tf.constant(values) for name, values in raw_features_from_cells(schema, columns).items()}
    served = first.signatures["serving_default"](**raw)["click_probability"].numpy()
    np.testing.assert_array_equal(served, second.signatures["serving_default"](**raw)["click_probability"].numpy())
    assert len(set(np.round(served, 6).tolist())) > 1


def _raw_columns(lines):
    return dict(zip(HEADER.split(",")[1:], zip(*[line.split(",")[1:] for line in lines])))


def test_text_where_a_float_belongs_names_the_feature(runs):
    from tf_multiembed.serving import RequestBuilder, decode_predict_request, decode_rest_request

    root, _ = runs
    (version,) = (root / "export_whole" / "clicks").iterdir()
    builder = RequestBuilder.from_saved_model(version)
    assert builder.input_specs["price"].dtype == tf.float64 and builder.input_specs["tags"].dtype == tf.string
    row = {**{name: values[0] for name, values in _raw_columns(_rows(1, seed=3)).items()}, "tags": ["jazz"]}
    bad_row = {**row, "price": "cheap"}
    message = r"feature 'price', row 1: expected a number \(or None/NaN for missing\), received the text 'cheap'\."
    for build in (builder.rest_rows, lambda rows: builder.predict_request_from_rows(rows, "clicks"),
                  lambda rows: builder.tensors(builder.rows_to_columns(rows))):
        with pytest.raises(TypeError, match=message):
            build([row, bad_row])
    # In process, the builder's tensors serve what the raw columns serve.
    loaded = tf.saved_model.load(str(version))
    serve = loaded.signatures["serving_default"]
    from_builder = serve(**builder.tensors(builder.rows_to_columns([row])))["click_probability"].numpy()
    request = builder.predict_request_from_rows([row], "clicks")
    np.testing.assert_array_equal(serve(**decode_predict_request(request))["click_probability"].numpy(),
                                  from_builder)

    # A REST body written by hand (curl): the decoder follows TF Serving's json_tensor.cc, which names the key in the
    # row form (the same text, less TF Serving's status prefix) but not in the columnar form, where the decoder adds
    # the input's name and position before TF Serving's text.
    instance = {**builder.rest_rows([row])["instances"][0], "price": "cheap"}  # every other value of the right type
    body = json.dumps({"instances": [instance]})
    with pytest.raises(ValueError, match=r"^Failed to process element: 0 key: price of 'instances' list\. Error: "
                                         r'JSON Value: "cheap" Type: String is not of expected type: double$'):
        decode_rest_request(body, builder.input_specs)
    columns = {name: [value] for name, value in instance.items()}
    with pytest.raises(ValueError, match=r"^inputs\['price'\]\[0\]: JSON Value: \"cheap\" Type: String is not of "
                                         r"expected type: double$"):
        decode_rest_request(json.dumps({"inputs": columns}), builder.input_specs)

    # The signature itself (what tf.saved_model.load, saved_model_cli and TF Serving's gRPC path run) refuses a
    # string tensor before the graph runs, naming the input by its position among the sorted input names; that
    # message is TensorFlow's and cannot name the feature, hence the checks above.
    tensors = builder.tensors(builder.rows_to_columns([row]))
    position = sorted(tensors).index("price")
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"input #{position}\(zero-based\) was expected to be a double tensor but is a string "
                             r"tensor"):
        serve(**{**tensors, "price": tf.constant(["cheap"])})


def test_the_collapse_report_reads_the_embedded_numeric_fields_of_the_run_and_its_export(runs, tmp_path):
    from tf_multiembed.diagnostics import analyze_embeddings, load_for_diagnostics, write_report

    root, _ = runs
    (version,) = (root / "export_whole" / "clicks").iterdir()
    from_run = analyze_embeddings(load_for_diagnostics(root / "whole"))  # its best.keras
    results = write_report({"export": load_for_diagnostics(version)}, tmp_path / "report")
    from_export = results["export"].embedding
    assert from_export.field_names == from_run.field_names == ["user", "age", "visits", "tags"]
    # By hand from the exported variable: the three fields' value vectors, sets side by side, as a [3, 2*K] table.
    kernel = tf.saved_model.load(str(version)).model_variables["numeric_embedding.kernel"].numpy()  # [M, F_e, K]
    assert kernel.shape[:2] == (2, 3)
    singular = np.linalg.svd(np.concatenate(list(kernel), axis=1).astype(np.float64), compute_uv=False)
    per_set = [np.linalg.svd(kernel[m].astype(np.float64), compute_uv=False) for m in range(2)]
    for numeric in (from_run.numeric, from_export.numeric):  # best.keras and the export hold the kept weights
        assert numeric.name == "numeric (embedded, 3 rows)" and numeric.field_names == ["price", "dwell", "rank"]
        assert numeric.concat_abundance == pytest.approx(singular.sum() / singular.max(), rel=1e-6)
        np.testing.assert_allclose(numeric.set_abundance, [s.sum() / s.max() for s in per_set], rtol=1e-6)
        assert 1 < numeric.concat_abundance <= numeric.ceiling == 3
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert f"| *numeric (embedded, 3 rows)* | 3 | 3 | {from_export.numeric.concat_abundance:.2f} |" in summary
    assert "its IA and RankMe are at most 3 (its ceiling, F_e)" in summary
