"""The TF Serving export: layout, signature contract, fresh-process load, saved_model_cli, REST/gRPC requests
decoded and run through the signature, no skew, missing/unknown values, bad requests, and the edges (empty batches,
strict request building, versions, TF Serving's JSON strictness, one signature per export name)."""

import base64
import json
import math
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import serving_fixtures
from tf_multiembed.serving import (OUTPUT_NAME, ExportMismatchError, RequestBuilder, check_export_target,
                                   decode_predict_request, decode_rest_request, export_for_serving,
                                   read_warmup_requests, rest_url)
from tf_multiembed.serving.examples import raw_features_from_files

ROWS = 24


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return serving_fixtures.build_serving_setup(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def signature(setup):
    loaded = tf.saved_model.load(str(setup.export_path))
    signature = loaded.signatures["serving_default"]
    signature.loaded = loaded  # keep the tables and variables alive with the function
    return signature


@pytest.fixture(scope="module")
def builder(setup):
    return RequestBuilder.from_schema(setup.schema)


def _serve(signature, tensors):
    return signature(**tensors)[OUTPUT_NAME].numpy()


def test_tf_serving_layout_and_signature(setup, signature):
    path = setup.export_path
    assert path.name == "1" and path.parent.name == "clicks"
    assert (path / "saved_model.pb").is_file() and (path / "variables").is_dir()
    assets = {p.name for p in (path / "assets").iterdir()}
    assert {"user.txt", "city.txt", "age.txt", "tags_0.txt", "tags_1.txt"} <= assets
    _, inputs = signature.structured_input_signature
    assert {name: spec.dtype for name, spec in inputs.items()} == {
        "user": tf.string, "city": tf.string, "age": tf.float64, "tags": tf.string}
    assert all(spec.shape.as_list() == [None] for spec in inputs.values())
    assert list(signature.structured_outputs) == [OUTPUT_NAME]
    assert not list(path.parent.glob(".staging*"))


def test_versions_are_numbered_and_never_overwritten(setup, tmp_path):
    encoder = setup.data.feature_encoder()
    first = export_for_serving(setup.model, encoder, tmp_path, "m")
    second = export_for_serving(setup.model, encoder, tmp_path, "m")
    assert (first.name, second.name) == ("1", "2")
    with pytest.raises(FileExistsError, match="immutable"):
        export_for_serving(setup.model, encoder, tmp_path, "m", version=2)
    with pytest.raises(ValueError, match="plain directory name"):
        export_for_serving(setup.model, encoder, tmp_path, "a/b")


def test_raw_rows_through_the_signature_equal_the_training_model_on_encoded_rows(setup, signature, builder):
    features = raw_features_from_files(setup.schema, setup.csv, ROWS)
    served = _serve(signature, decode_rest_request(json.dumps(builder.rest_columns(features)), builder.input_specs))
    expected = setup.model_predictions(setup.encoded_rows(ROWS))
    np.testing.assert_allclose(served, expected, rtol=1e-6, atol=1e-7)
    assert served.shape == (ROWS,)


def test_rest_row_and_columnar_and_grpc_requests_agree(setup, signature, builder):
    features = raw_features_from_files(setup.schema, setup.csv, ROWS)
    expected = setup.model_predictions(setup.encoded_rows(ROWS))
    row_body = json.dumps(builder.rest_rows(serving_fixtures.raw_rows(features)))
    assert '"instances"' in row_body and '"signature_name": "serving_default"' in row_body
    from_rows = _serve(signature, decode_rest_request(row_body, builder.input_specs))
    from_columns = _serve(signature, decode_rest_request(json.dumps(builder.rest_columns(features)),
                                                         builder.input_specs))
    request = builder.predict_request(features, "clicks", version=1)
    assert (request.model_spec.name, request.model_spec.signature_name, request.model_spec.version.value) == \
        ("clicks", "serving_default", 1)
    wire = type(request).FromString(request.SerializeToString())  # what travels over gRPC
    from_grpc = _serve(signature, decode_predict_request(wire))
    for served in (from_rows, from_columns, from_grpc):
        np.testing.assert_allclose(served, expected, rtol=1e-6, atol=1e-7)


def test_unknown_empty_and_missing_values_map_to_oov_and_the_missing_bucket(setup, signature, builder):
    encoder = setup.data.feature_encoder()
    rows = [
        {"user": "never-seen-user", "city": "atlantis", "age": 30, "tags": "unknown-tag"},
        {"user": "", "city": None, "age": None, "tags": ""},
        {"user": "u1", "city": "paris", "age": float("nan"), "tags": "sport|news"},
        {"user": "u1", "city": "paris", "age": "", "tags": "sport|news"},
    ]
    columns = builder.rows_to_columns(rows)
    assert columns["city"][1] == "" and math.isnan(columns["age"][1]) and math.isnan(columns["age"][3])
    tensors = decode_rest_request(json.dumps(builder.rest_rows(rows)), builder.input_specs)
    ids = encoder(tensors).numpy()
    user, city, age, tag0, tag1 = range(5)
    assert ids[0, user] == 0 and ids[0, city] == 0 and ids[0, tag0] == 0 and ids[0, age] != 0
    assert np.all(ids[1] == 0)  # every value missing: every field's OOV/missing id 0
    assert ids[2, user] != 0 and ids[2, city] != 0 and ids[2, age] == 0 and ids[2, tag0] != 0 and ids[2, tag1] != 0
    np.testing.assert_array_equal(ids[2], ids[3])  # NaN and "" are the same missing number
    np.testing.assert_allclose(_serve(signature, tensors), setup.model_predictions(ids), rtol=1e-6, atol=1e-7)


def test_bad_requests_name_the_feature(builder, signature):
    good = {"user": "u1", "city": "paris", "age": 31, "tags": "sport"}
    with pytest.raises(ValueError, match=r"row 0: missing features \['age'\]"):
        builder.rest_rows([{key: value for key, value in good.items() if key != "age"}])
    with pytest.raises(ValueError, match=r"unknown features \['agee'\]"):
        builder.rest_rows([{**good, "agee": 3}])
    with pytest.raises(TypeError, match="feature 'age', row 1: expected a number .* text 'old'"):
        builder.rest_rows([good, {**good, "age": "old"}])
    with pytest.raises(TypeError, match="feature 'city', row 0: expected a categorical value"):
        builder.rest_rows([{**good, "city": 1.5}])
    with pytest.raises(ValueError, match="same number of rows"):
        builder.rest_columns({"user": ["a"], "city": ["b", "c"], "age": [1], "tags": [""]})
    # What the server says about hand-written bodies.
    with pytest.raises(ValueError, match="Missing named input: city"):
        decode_rest_request('{"inputs": {"user": ["a"], "age": [1.0], "tags": [""]}}', builder.input_specs)
    with pytest.raises(ValueError, match="not of expected type: string"):
        decode_rest_request('{"instances": [{"user": 7, "city": "a", "age": 1.0, "tags": ""}]}',
                            builder.input_specs)
    # And the signature itself, called with a missing feature or a wrong dtype.
    tensors = {"user": tf.constant(["u1"]), "city": tf.constant(["paris"]), "age": tf.constant([31.0], tf.float64),
               "tags": tf.constant(["sport"])}
    with pytest.raises(TypeError, match="age"):
        signature(**{key: value for key, value in tensors.items() if key != "age"})
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        signature(**{**tensors, "city": tf.constant([3], tf.int64)})


def test_warmup_requests_replay_through_the_signature(setup, signature):
    requests = read_warmup_requests(setup.export_path)
    assert [len(r.inputs["user"].string_val) for r in requests] == [1, 16]
    assert all(r.model_spec.name == "clicks" for r in requests)
    for request in requests:
        served = _serve(signature, decode_predict_request(request))
        assert np.all((served > 0) & (served < 1))


_FRESH_PROCESS = """
import json, sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
features = json.loads(sys.argv[2])
tensors = {name: tf.constant(values, tf.float64 if name == "age" else tf.string) for name, values in features.items()}
print(json.dumps(loaded.signatures["serving_default"](**tensors)["click_probability"].numpy().tolist()))
"""


def _cli():
    return str(pathlib.Path(sys.executable).with_name("saved_model_cli"))


def test_fresh_process_load_without_the_original_vocabularies(setup, tmp_path):
    # Copy the version elsewhere and hide the build's vocabulary files: the SavedModel must carry its assets.
    copy = tmp_path / "moved" / "1"
    shutil.copytree(setup.export_path, copy)
    vocab_dir = setup.data.vocab_dir
    hidden = vocab_dir.with_name(vocab_dir.name + "-hidden")
    vocab_dir.rename(hidden)
    try:
        features = raw_features_from_files(setup.schema, setup.csv, 6)
        features["age"] = [None if math.isnan(v) else v for v in features["age"]]
        script_features = {k: [float("nan") if v is None else v for v in values] for k, values in features.items()}
        output = subprocess.run([sys.executable, "-c", _FRESH_PROCESS, str(copy), json.dumps(script_features)],
                                capture_output=True, text=True, timeout=120, check=True).stdout
    finally:
        hidden.rename(vocab_dir)
    served = np.array(json.loads(output.strip().splitlines()[-1]))
    np.testing.assert_allclose(served, setup.model_predictions(setup.encoded_rows(6)), rtol=1e-6, atol=1e-7)


def test_saved_model_cli_show_and_run(setup, tmp_path):
    show = subprocess.run([_cli(), "show", "--dir", str(setup.export_path), "--all"], capture_output=True,
                          text=True, timeout=120, check=True).stdout
    assert "signature_def['serving_default']" in show and "tensorflow/serving/predict" in show
    for line in ("inputs['user'] tensor_info:", "inputs['age'] tensor_info:", "outputs['click_probability']"):
        assert line in show
    assert "DT_DOUBLE" in show and "DT_STRING" in show
    # Strings as Python literals; the numbers from a .npy file, because a literal cannot spell NaN.
    expressions = 'user=[b"u1",b"nobody"];city=[b"paris",b""];tags=[b"sport|news",b""]'
    np.save(tmp_path / "age.npy", np.array([31.0, np.nan]))
    subprocess.run([_cli(), "run", "--dir", str(setup.export_path), "--tag_set", "serve", "--signature_def",
                    "serving_default", "--input_exprs", expressions, "--inputs", f"age={tmp_path / 'age.npy'}",
                    "--outdir", str(tmp_path)], capture_output=True, text=True, timeout=120, check=True)
    served = np.load(tmp_path / "click_probability.npy")
    encoder = setup.data.feature_encoder()
    ids = encoder({"user": tf.constant(["u1", "nobody"]), "city": tf.constant(["paris", ""]),
                   "age": tf.constant([31.0, float("nan")], tf.float64),
                   "tags": tf.constant(["sport|news", ""])}).numpy()
    np.testing.assert_allclose(served, setup.model_predictions(ids), rtol=1e-6, atol=1e-7)


# --- the edges: empty batches, strict request building, versions, TF Serving's JSON strictness ---------------------

def _empty(builder):
    return {name: tf.constant([], dtype=spec.dtype) for name, spec in builder.input_specs.items()}


def test_a_batch_of_zero_rows_gets_an_empty_result(signature, builder):
    assert _serve(signature, _empty(builder)).shape == (0,)
    # The same through TF Serving's formats: columnar REST with empty lists, and gRPC.
    body = json.dumps(builder.rest_columns({name: [] for name in builder.input_specs}))
    assert _serve(signature, decode_rest_request(body, builder.input_specs)).shape == (0,)
    request = builder.predict_request({name: [] for name in builder.input_specs}, "clicks", version=1)
    assert _serve(signature, decode_predict_request(request)).shape == (0,)


def test_features_of_different_lengths_are_refused_by_the_signature(signature):
    tensors = {"user": tf.constant(["u1", "u2"]), "city": tf.constant(["paris"]),
               "age": tf.constant([31.0, 40.0], tf.float64), "tags": tf.constant(["sport", ""])}
    with pytest.raises(tf.errors.InvalidArgumentError, match="feature city has another number of rows than user"):
        signature(**tensors)


GOOD_COLUMNS = {"user": ["u1"], "city": ["paris"], "age": [31], "tags": ["sport"]}


@pytest.mark.parametrize("column, value, error, message", [
    ("user", "u1", TypeError, "feature 'user': a str is one value, not a column; give a list"),
    ("user", b"u1", TypeError, "feature 'user': a bytes is one value, not a column"),
    ("city", (city for city in ["paris"]), TypeError, "feature 'city': expected a list, tuple or 1-D array"),
    ("city", {"paris": 1}, TypeError, "feature 'city': expected a list, tuple or 1-D array"),
    ("age", np.ones((1, 1)), ValueError, "feature 'age': expected a 1-D column"),
    ("user", [b"\xff\xfe"], TypeError, "feature 'user', row 0: the bytes .* are not UTF-8"),
    ("age", [2 ** 60], ValueError, "feature 'age', row 0: the integer 1152921504606846976 cannot be sent as float64"),
    ("age", [True], TypeError, "feature 'age', row 0: expected a number .* bool"),
    ("age", [[31]], TypeError, "feature 'age', row 0: expected a number, received list"),
    ("tags", [3.5], TypeError, "feature 'tags', row 0: expected a categorical value"),
    ("tags", [object()], TypeError, "feature 'tags', row 0: expected a categorical value"),
])
def test_request_builder_names_the_feature_of_every_bad_value(builder, column, value, error, message):
    with pytest.raises(error, match=message):
        builder.rest_columns({**GOOD_COLUMNS, column: value})
    with pytest.raises(error, match=message):
        builder.predict_request({**GOOD_COLUMNS, column: value}, "clicks")


def test_request_builder_accepts_rows_from_a_generator_but_no_empty_row_request(builder):
    body = builder.rest_rows(row for row in [{"user": "u1", "city": "paris", "age": 31, "tags": "sport"}])
    assert body["instances"] == [{"user": "u1", "city": "paris", "age": 31.0, "tags": "sport"}]
    with pytest.raises(ValueError, match="needs at least one row .* send columns for an empty batch"):
        builder.rest_rows([])
    with pytest.raises(TypeError, match="expected a list of .* dicts, received one dict"):
        builder.rest_rows({"user": "u1", "city": "paris", "age": 31, "tags": "sport"})


@pytest.mark.parametrize("version", [0, -1, True, 1.0, "2"])
def test_versions_must_be_integers_from_one(builder, setup, tmp_path, version):
    with pytest.raises(ValueError, match="version must be an integer >= 1"):
        builder.predict_request(GOOD_COLUMNS, "clicks", version=version)
    with pytest.raises(ValueError, match="version must be an integer >= 1"):
        rest_url("localhost", 8501, "clicks", version=version)
    with pytest.raises(ValueError, match="version must be an integer >= 1"):
        export_for_serving(setup.model, setup.data.feature_encoder(), tmp_path, "clicks", version=version)
    assert not (tmp_path / "clicks").exists() or not any((tmp_path / "clicks").iterdir())


def test_an_export_name_keeps_one_signature(setup, tmp_path):
    other = {**builder_specs(setup), "age": tf.TensorSpec([None], tf.string)}
    del other["tags"]
    export_for_serving(setup.model, setup.data.feature_encoder(), tmp_path, "clicks")
    with pytest.raises(ExportMismatchError, match=r"inputs only in the served versions: \['tags'\]; dtypes changed: "
                                                  r"\{'age': 'float64 -> string'\}"):
        check_export_target(tmp_path, "clicks", other)
    assert check_export_target(tmp_path, "clicks", builder_specs(setup)) == (tmp_path / "clicks", 2)


def builder_specs(setup):
    return RequestBuilder.from_schema(setup.schema).input_specs


ROW = {"user": "u1", "city": "paris", "age": 31.0, "tags": "sport"}


@pytest.mark.parametrize("body, message", [
    ("", "The document is empty"),
    ("[1, 2]", "Is not object"),
    ("{'inputs': 1}", "JSON Parse error"),
    ("{}", "Missing 'inputs' or 'instances' key"),
    (json.dumps({"instances": [ROW], "inputs": {}}), "only one of 'inputs' or 'instances'"),
    (json.dumps({"instances": []}), "No values in 'instances' array"),
    (json.dumps({"instances": {"user": "u1"}}), "Excepting 'instances' to be an list/array"),
    (json.dumps({"instances": ["u1"]}), "instances is a plain list, but expecting list of objects"),
    (json.dumps({"instances": [{**ROW, "agee": 3}]}), "does not have named input: agee"),
    (json.dumps({"instances": [{k: v for k, v in ROW.items() if k != "tags"}]}), r"keys must be equal to.*\['tags'\]"),
    (json.dumps({"instances": [{**ROW, "age": "31"}]}),
     "^Failed to process element: 0 key: age of 'instances' list. Error: JSON Value: \"31\" Type: String is not of "
     "expected type: double$"),  # TF Serving's text (json_tensor.cc, DataTypeString), less its status prefix
    (json.dumps({"instances": [{**ROW, "age": True}]}), "Type: True is not of expected type: double"),
    (json.dumps({"instances": [{**ROW, "age": None}]}), "Type: Null is not of expected type: double"),
    (json.dumps({"instances": [{**ROW, "age": 2 ** 60}]}), "to double without loss of precision"),
    (json.dumps({"instances": [{**ROW, "user": 7}]}), "Type: Number is not of expected type: string"),
    (json.dumps({"instances": [{**ROW, "user": ["u1"]}]}), "one value per instance"),
    (json.dumps({"instances": [{**ROW, "user": {"b64": "%%%"}}]}), "Unable to base64 decode"),
    (json.dumps({"inputs": {"user": "u1", "city": ["paris"], "age": [31.0], "tags": [""]}}), "takes shape \\[batch\\]"),
    (json.dumps({"inputs": {"user": [["u1"]], "city": ["paris"], "age": [31.0], "tags": [""]}}), "nested deeper"),
    (json.dumps({"inputs": ["u1"]}), "inputs is a plain value/list, but expecting an object"),
    (json.dumps({"signature_name": 3, "inputs": {}}), "'signature_name' key must be a string"),
    (json.dumps({"signature_name": "other", "instances": [ROW]}), "addresses signature 'other'"),
])
def test_rest_decoder_refuses_what_tf_serving_refuses(builder, body, message):
    with pytest.raises(ValueError, match=message):
        decode_rest_request(body, builder.input_specs)


def test_rest_decoder_accepts_what_tf_serving_accepts(builder, signature):
    row = {**ROW, "user": {"b64": base64.b64encode(b"u1").decode()}, "age": float("nan")}
    columns = decode_rest_request(json.dumps({"signature_name": "serving_default", "instances": [row, ROW]}),
                                  builder.input_specs)
    assert columns["user"].numpy().tolist() == [b"u1", b"u1"] and np.isnan(columns["age"].numpy()[0])
    assert json.dumps({"inputs": {"age": [float("nan")]}}) == '{"inputs": {"age": [NaN]}}'  # the bare NaN token
    # Extra keys of the columnar form are ignored (TF Serving reads only the signature's inputs); ints are doubles.
    tensors = decode_rest_request(json.dumps({"inputs": {**{k: [v] for k, v in ROW.items()}, "age": [31],
                                                         "extra": [1]}}), builder.input_specs)
    assert tensors["age"].dtype == tf.float64 and _serve(signature, tensors).shape == (1,)
