"""Requests in TF Serving's formats for the raw-feature signature, and the decoding TF Serving applies to them.

`RequestBuilder` turns rows (`[{"C1": "68fd1e64", "I1": 3, ...}, ...]`) or columns (`{"C1": [...], "I1": [...]}`)
into the REST body (row `instances` or columnar `inputs` form) and the gRPC `PredictRequest`. It checks every
value against the signature first, so a missing feature, an unknown one or a value of the wrong kind fails on the
client with the feature and row named, not as an opaque server error. Missing values: `None` or "" for categorical
features (sent as "", which the model maps to the OOV id) and `None`, "" or NaN for numeric ones (sent as NaN, the
missing bucket). REST bodies carry NaN as the bare token `NaN`, which TF Serving's JSON parser accepts
(rapidjson's kParseNanAndInfFlag) and Python's `json.dumps` writes.

`decode_rest_request` and `decode_predict_request` do what the server does with a request (the REST decoder follows
tensorflow_serving/util/json_tensor.cc): tests and users can run a request through a loaded signature without a
`tensorflow_model_server`.
"""

import json
import math
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

SERVING_SIGNATURE = "serving_default"


def _input_specs_of_signature(concrete_function) -> Dict[str, tf.TensorSpec]:
    _, keyword_specs = concrete_function.structured_input_signature
    return dict(keyword_specs)


class RequestBuilder:
    """Builds TF Serving requests for a signature's raw-feature inputs.

    Args:
        input_specs: `{feature name: tf.TensorSpec([None], tf.string or a number dtype)}`, e.g.
            `tf_multiembed.data.raw_feature_signature(schema)`.
        signature_name: the signature the requests address.

    Example:
        >>> builder = RequestBuilder({"city": tf.TensorSpec([None], tf.string), "age": tf.TensorSpec([None], tf.float64)})
        >>> builder.rest_rows([{"city": "paris", "age": 31}])
        {'signature_name': 'serving_default', 'instances': [{'city': 'paris', 'age': 31.0}]}
    """

    def __init__(self, input_specs: Mapping[str, tf.TensorSpec], signature_name: str = SERVING_SIGNATURE):
        if not input_specs:
            raise ValueError("RequestBuilder: `input_specs` is empty; give the signature's inputs.")
        self.input_specs = dict(input_specs)
        self.signature_name = signature_name
        for name, spec in self.input_specs.items():
            if spec.dtype != tf.string and not (spec.dtype.is_floating or spec.dtype.is_integer):
                raise ValueError(f"RequestBuilder: input {name!r} has dtype {spec.dtype.name}; only strings and "
                                 "numbers are supported.")

    @classmethod
    def from_schema(cls, schema, signature_name: str = SERVING_SIGNATURE) -> "RequestBuilder":
        """For the SavedModel exported from data built with `schema` (`tf_multiembed.data.Schema`)."""
        from tf_multiembed.data import raw_feature_signature

        return cls(raw_feature_signature(schema), signature_name)

    @classmethod
    def from_saved_model(cls, path, signature_name: str = SERVING_SIGNATURE) -> "RequestBuilder":
        """Reads the input specs from an exported SavedModel's signature."""
        loaded = tf.saved_model.load(str(path))
        if signature_name not in loaded.signatures:
            raise ValueError(f"SavedModel {path} has no signature {signature_name!r}; it has "
                             f"{sorted(loaded.signatures)}.")
        return cls(_input_specs_of_signature(loaded.signatures[signature_name]), signature_name)

    # --- value checks -------------------------------------------------------------------------------------------

    def _value(self, name: str, value, row: int):
        spec = self.input_specs[name]
        where = f"feature {name!r}, row {row}"
        if isinstance(value, (np.generic,)):
            value = value.item()
        if spec.dtype == tf.string:
            if value is None:
                return ""
            if isinstance(value, bytes):
                return value.decode("utf-8")
            if isinstance(value, bool) or isinstance(value, float):
                raise TypeError(f"{where}: expected a categorical value (str, or an int id as in the data), received "
                                f"{type(value).__name__} {value!r}.")
            if isinstance(value, (str, int)):
                return str(value)
            raise TypeError(f"{where}: expected a categorical value (str), received {type(value).__name__}.")
        # Numeric input.
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return math.nan
        if isinstance(value, bool):
            raise TypeError(f"{where}: expected a number (or None/NaN for missing), received bool {value!r}.")
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise TypeError(f"{where}: expected a number (or None/NaN for missing), received the text "
                                f"{value!r}.") from None
        if isinstance(value, (int, float)):
            if spec.dtype.is_integer:
                if isinstance(value, float) and not value.is_integer():
                    raise TypeError(f"{where}: input {name!r} is {spec.dtype.name}, received {value!r}.")
                return int(value)
            return float(value)
        raise TypeError(f"{where}: expected a number, received {type(value).__name__}.")

    def _check_names(self, names, where: str) -> None:
        names = set(names)
        missing = [name for name in self.input_specs if name not in names]
        unknown = sorted(names - set(self.input_specs))
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing features {missing}")
            if unknown:
                parts.append(f"unknown features {unknown}")
            raise ValueError(f"{where}: {' and '.join(parts)}; the signature takes exactly "
                             f"{list(self.input_specs)}.")

    def columns(self, columns: Mapping[str, Sequence]) -> Dict[str, list]:
        """Checked and normalised columns: `{name: [value, ...]}` with missing values as "" / NaN."""
        self._check_names(columns.keys(), "columns")
        lengths = {name: len(values) for name, values in columns.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"columns: every feature needs the same number of rows, received {lengths}.")
        if not next(iter(lengths.values())):
            raise ValueError("columns: a request needs at least one row.")
        return {name: [self._value(name, value, row) for row, value in enumerate(columns[name])]
                for name in self.input_specs}

    def rows_to_columns(self, rows: Sequence[Mapping[str, object]]) -> Dict[str, list]:
        """Checked columns of a list of row dicts."""
        if isinstance(rows, Mapping) or not len(rows):
            raise ValueError("rows: expected a non-empty list of {feature name: value} dicts.")
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise TypeError(f"rows: row {index} is a {type(row).__name__}, expected a dict of feature values.")
            self._check_names(row.keys(), f"row {index}")
        return self.columns({name: [row[name] for row in rows] for name in self.input_specs})

    # --- request formats ----------------------------------------------------------------------------------------

    def rest_rows(self, rows: Sequence[Mapping[str, object]]) -> dict:
        """The REST body in row form: `{"signature_name": ..., "instances": [{name: value, ...}, ...]}`."""
        columns = self.rows_to_columns(rows)
        count = len(next(iter(columns.values())))
        instances = [{name: columns[name][index] for name in self.input_specs} for index in range(count)]
        return {"signature_name": self.signature_name, "instances": instances}

    def rest_columns(self, columns: Mapping[str, Sequence]) -> dict:
        """The REST body in columnar form: `{"signature_name": ..., "inputs": {name: [values], ...}}`."""
        return {"signature_name": self.signature_name, "inputs": self.columns(columns)}

    def predict_request(self, columns: Mapping[str, Sequence], model_name: str, version: Optional[int] = None):
        """The gRPC `tensorflow_serving.apis.predict_pb2.PredictRequest` for `columns`.

        Example:
            >>> request = builder.predict_request({"city": ["paris"], "age": [31]}, "ctr")  # doctest: +SKIP
            >>> stub.Predict(request, timeout=1.0)  # doctest: +SKIP
        """
        from tensorflow_serving.apis import predict_pb2

        checked = self.columns(columns)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = self.signature_name
        if version is not None:
            request.model_spec.version.value = int(version)
        for name, spec in self.input_specs.items():
            values = checked[name]
            if spec.dtype == tf.string:
                array = np.array([value.encode("utf-8") for value in values], dtype=object)
            else:
                array = np.array(values, dtype=spec.dtype.as_numpy_dtype)
            request.inputs[name].CopyFrom(tf.make_tensor_proto(array, dtype=spec.dtype))
        return request

    def predict_request_from_rows(self, rows: Sequence[Mapping[str, object]], model_name: str,
                                  version: Optional[int] = None):
        """The gRPC `PredictRequest` for a list of row dicts."""
        return self.predict_request(self.rows_to_columns(rows), model_name, version)


def rest_url(host: str, port: int, model_name: str, version: Optional[int] = None) -> str:
    """TF Serving's REST predict URL, e.g. `http://localhost:8501/v1/models/ctr:predict`."""
    version_part = f"/versions/{int(version)}" if version is not None else ""
    return f"http://{host}:{int(port)}/v1/models/{model_name}{version_part}:predict"


# --- what the server does with a request ------------------------------------------------------------------------

def _rest_value(name: str, value, dtype: tf.DType, where: str):
    if dtype == tf.string:
        if not isinstance(value, str):
            raise ValueError(f"{where}: JSON value {value!r} of input {name!r} is not of expected type string.")
        return value.encode("utf-8")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: JSON value {value!r} of input {name!r} is not of expected type {dtype.name}.")
    if dtype.is_integer and not isinstance(value, int):
        raise ValueError(f"{where}: JSON value {value!r} of input {name!r} is not of expected type {dtype.name}.")
    return value


def decode_rest_request(body: Union[str, bytes, Mapping], input_specs: Mapping[str, tf.TensorSpec]
                        ) -> Dict[str, tf.Tensor]:
    """The input tensors TF Serving makes of a REST predict body (row or columnar form) for a signature.

    Follows tensorflow_serving/util/json_tensor.cc: exactly one of `instances` / `inputs`; each instance object must
    have exactly the signature's inputs; each value must have the input's JSON type (string or number; NaN allowed).

    Example:
        >>> decode_rest_request('{"inputs": {"age": [31.0]}}', {"age": tf.TensorSpec([None], tf.float64)})
        {'age': <tf.Tensor: shape=(1,), dtype=float64, numpy=array([31.])>}
    """
    document = json.loads(body) if isinstance(body, (str, bytes)) else body
    if not isinstance(document, Mapping):
        raise ValueError("JSON body is not an object.")
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances == has_inputs:
        raise ValueError("JSON body must have exactly one of 'instances' (row form) or 'inputs' (columnar form).")
    columns: Dict[str, List] = {}
    if has_instances:
        instances = document["instances"]
        if not isinstance(instances, list) or not instances:
            raise ValueError("'instances' must be a non-empty list.")
        columns = {name: [] for name in input_specs}
        for index, instance in enumerate(instances):
            if not isinstance(instance, Mapping) or set(instance) != set(input_specs):
                raise ValueError(f"Failed to process element: {index} of 'instances' list: keys must be equal to "
                                 f"{sorted(input_specs)}, received {sorted(instance) if isinstance(instance, Mapping) else instance!r}.")
            for name, spec in input_specs.items():
                columns[name].append(_rest_value(name, instance[name], spec.dtype, f"instance {index}"))
    else:
        inputs = document["inputs"]
        if not isinstance(inputs, Mapping):
            raise ValueError("'inputs' must be an object of named inputs.")
        for name, spec in input_specs.items():
            if name not in inputs:
                raise ValueError(f"Missing named input: {name} in 'inputs' object.")
            values = inputs[name]
            if not isinstance(values, list):
                raise ValueError(f"Input {name!r} must be a list (batch dimension first).")
            columns[name] = [_rest_value(name, value, spec.dtype, f"inputs[{name!r}][{row}]")
                             for row, value in enumerate(values)]
    return {name: tf.constant(values, dtype=input_specs[name].dtype) for name, values in columns.items()}


def decode_predict_request(request) -> Dict[str, tf.Tensor]:
    """The input tensors of a gRPC `PredictRequest` (`tf.make_ndarray` of each `TensorProto`)."""
    return {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
