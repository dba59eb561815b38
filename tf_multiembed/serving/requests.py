"""Requests in TF Serving's formats for the raw-feature signature, and the decoding TF Serving applies to them.

`RequestBuilder` turns rows (`[{"C1": "68fd1e64", "I1": 3, ...}, ...]`) or columns (`{"C1": [...], "I1": [...]}`)
into the REST body (row `instances` or columnar `inputs` form) and the gRPC `PredictRequest`. It checks every
value against the signature first, so a missing feature, an unknown one or a value of the wrong kind fails on the
client with the feature and row named, not as an opaque server error: a column must be a list (a bare string is one
value, not a column of characters), bytes must be UTF-8 text, a number must fit the input's dtype exactly (as TF
Serving's own JSON check demands), and a version is an integer >= 1. Missing values: `None` or "" for categorical
features (sent as "", which the model maps to the OOV id) and `None`, "" or NaN for numeric ones (sent as NaN, the
missing bucket). REST bodies carry NaN as the bare token `NaN`, which TF Serving's JSON parser accepts
(rapidjson's kParseNanAndInfFlag) and Python's `json.dumps` writes.

`decode_rest_request` and `decode_predict_request` do what the server does with a request (the REST decoder follows
tensorflow_serving/util/json_tensor.cc, including its refusals): tests and users can run a request through a loaded
signature without a `tensorflow_model_server`.
"""

import base64
import binascii
import json
import math
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from tf_multiembed import artifacts, types

if TYPE_CHECKING:
    from tensorflow_serving.apis import predict_pb2
    from tf_multiembed.data.schema import Schema


SERVING_SIGNATURE = "serving_default"


def input_specs_of_signature(concrete_function: Any) -> Dict[str, tf.TensorSpec]:
    """`{input name: TensorSpec}` of a signature's keyword inputs."""
    _, keyword_specs = concrete_function.structured_input_signature
    return dict(keyword_specs)


def check_version(version: Any) -> Optional[int]:
    """`version` as an int, if it is None or an integer >= 1 (TF Serving's version numbers)."""
    if version is None:
        return None
    if isinstance(version, (bool, float)) or not isinstance(version, (int, np.integer)) or int(version) < 1:
        raise ValueError(f"version must be an integer >= 1 (TF Serving numbers versions from 1), received "
                         f"{version!r}.")
    return int(version)


def _lossless_limit(dtype: tf.DType) -> Optional[int]:
    """The largest integer a float dtype holds exactly (TF Serving refuses JSON integers beyond it)."""
    if dtype == tf.float64:
        return 2 ** 53 - 1
    if dtype in (tf.float32, tf.bfloat16, tf.float16):
        return 2 ** {tf.float32: 24, tf.bfloat16: 8, tf.float16: 11}[dtype] - 1
    return None


def _integer_range(dtype: tf.DType) -> Tuple[int, int]:
    info = np.iinfo(dtype.as_numpy_dtype)
    return int(info.min), int(info.max)


class RequestBuilder:
    """Builds TF Serving requests for a signature's raw-feature inputs.

    Args:
        input_specs: `{feature name: tf.TensorSpec([None], tf.string or a number dtype)}`, e.g.
            `tf_multiembed.data.raw_feature_signature(schema)`.
        signature_name: the signature the requests address.
        list_separators: `{feature name: separator}` of list-valued string features (multi_categorical and bag
            fields, set by `from_schema`): a row may give them as a list of values, sent joined by the separator.

    Example:
        >>> specs = {"city": tf.TensorSpec([None], tf.string), "age": tf.TensorSpec([None], tf.float64)}
        >>> builder = RequestBuilder(specs)
        >>> builder.rest_rows([{"city": "paris", "age": 31}])
        {'signature_name': 'serving_default', 'instances': [{'city': 'paris', 'age': 31.0}]}
    """

    def __init__(self, input_specs: Mapping[str, tf.TensorSpec], signature_name: str = SERVING_SIGNATURE,
                 list_separators: Optional[Mapping[str, str]] = None) -> None:
        self.list_separators = dict(list_separators or {})
        if not input_specs:
            raise ValueError("RequestBuilder: `input_specs` is empty; give the signature's inputs.")
        self.input_specs = dict(input_specs)
        self.signature_name = signature_name
        for name, spec in self.input_specs.items():
            if spec.dtype != tf.string and not (spec.dtype.is_floating or spec.dtype.is_integer):
                raise ValueError(f"RequestBuilder: input {name!r} has dtype {spec.dtype.name}; only strings and "
                                 "numbers are supported.")

    @classmethod
    def from_schema(cls, schema: "Schema", signature_name: str = SERVING_SIGNATURE) -> "RequestBuilder":
        """For the SavedModel exported from data built with `schema` (`tf_multiembed.data.Schema`)."""
        from tf_multiembed.data import raw_feature_signature

        return cls(raw_feature_signature(schema), signature_name,
                   {field.name: field.separator for field in schema.fields if field.is_list})

    @classmethod
    def from_saved_model(cls, path: types.PathLike, signature_name: str = SERVING_SIGNATURE) -> "RequestBuilder":
        """Reads the input specs from an exported SavedModel's signature.

        The inputs are listed in the schema's order (the export metadata's order, as `from_schema` has them); a
        SavedModel itself keeps its inputs sorted by name, which is the order for exports without that metadata.
        """
        loaded = tf.saved_model.load(str(path))
        if signature_name not in loaded.signatures:
            raise ValueError(f"SavedModel {path} has no signature {signature_name!r}; it has "
                             f"{sorted(loaded.signatures)}.")
        specs = input_specs_of_signature(loaded.signatures[signature_name])
        try:
            metadata = artifacts.read_export_metadata(path)
        except artifacts.ArtifactError:  # not written by export_for_serving
            metadata = {}
        order = list(metadata.get("inputs", []))
        if sorted(order) == sorted(specs):
            specs = {name: specs[name] for name in order}
        return cls(specs, signature_name, metadata.get("list_separators"))

    # --- value checks -------------------------------------------------------------------------------------------

    def _value(self, name: str, value: Any, row: int) -> Union[str, int, float]:
        spec = self.input_specs[name]
        where = f"feature {name!r}, row {row}"
        if isinstance(value, np.generic):
            value = value.item()
        if spec.dtype == tf.string:
            if value is None:
                return ""
            if isinstance(value, (list, tuple)) and name in self.list_separators:
                return self._joined(name, value, where)
            if isinstance(value, bytes):
                try:
                    return value.decode("utf-8")
                except UnicodeDecodeError:
                    raise TypeError(f"{where}: the bytes {value[:40]!r} are not UTF-8 text; categorical values are "
                                    "text (decode them first).") from None
            if isinstance(value, (bool, float)):
                raise TypeError(f"{where}: expected a categorical value (str, or an int id as in the data), received "
                                f"{type(value).__name__} {value!r}.")
            if isinstance(value, (str, int)):
                return str(value)
            raise TypeError(f"{where}: expected a categorical value (str), received {type(value).__name__}.")
        # Numeric input.
        if value is None or (isinstance(value, str) and value.strip() == ""):
            if spec.dtype.is_integer:
                raise TypeError(f"{where}: input {name!r} is {spec.dtype.name}, which has no missing value; "
                                "received an empty value.")
            return math.nan
        if isinstance(value, bool):
            raise TypeError(f"{where}: expected a number (or None/NaN for missing), received bool {value!r}.")
        if isinstance(value, str):
            try:
                value = int(value) if spec.dtype.is_integer else float(value)
            except ValueError:
                raise TypeError(f"{where}: expected a number (or None/NaN for missing), received the text "
                                f"{value!r}.") from None
        if not isinstance(value, (int, float)):
            raise TypeError(f"{where}: expected a number, received {type(value).__name__}.")
        if spec.dtype.is_integer:
            if isinstance(value, float) and not value.is_integer():
                raise TypeError(f"{where}: input {name!r} is {spec.dtype.name}, received {value!r}.")
            low, high = _integer_range(spec.dtype)
            if not low <= int(value) <= high:
                raise ValueError(f"{where}: {value!r} is outside the range of {spec.dtype.name} [{low}, {high}].")
            return int(value)
        limit = _lossless_limit(spec.dtype)
        if isinstance(value, int) and limit is not None and abs(value) > limit:
            raise ValueError(f"{where}: the integer {value} cannot be sent as {spec.dtype.name} without loss of "
                             f"precision (TF Serving refuses integers beyond {limit} for this input).")
        return float(value)

    def _joined(self, name: str, values: Sequence[Any], where: str) -> str:
        separator = self.list_separators[name]
        for value in values:
            if not isinstance(value, str):
                raise TypeError(f"{where}: the list of {name!r} holds {type(value).__name__} {value!r}; its values "
                                "are text.")
            if separator in value:
                raise ValueError(f"{where}: the value {value!r} of {name!r} contains the field's separator "
                                 f"{separator!r}, so it would be read as several values.")
        return separator.join(values)

    def _check_names(self, names: Any, where: str) -> None:
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

    def _column(self, name: str, values: Any) -> List[Any]:
        if isinstance(values, (str, bytes)):
            raise TypeError(f"feature {name!r}: a {type(values).__name__} is one value, not a column; give a list "
                            f"with one value per row, e.g. [{values!r}].")
        if isinstance(values, np.ndarray):
            if values.ndim != 1:
                raise ValueError(f"feature {name!r}: expected a 1-D column (one value per row), received an array of "
                                 f"shape {values.shape}.")
            return values.tolist()
        if isinstance(values, Mapping) or not isinstance(values, Sequence):
            raise TypeError(f"feature {name!r}: expected a list, tuple or 1-D array of values (one per row), "
                            f"received {type(values).__name__}.")
        return list(values)

    def columns(self, columns: Mapping[str, Sequence[Any]]) -> Dict[str, List[Any]]:
        """Checked and normalised columns: `{name: [value, ...]}` with missing values as "" / NaN (0 rows allowed:
        the signature answers an empty batch with an empty result)."""
        if not isinstance(columns, Mapping):
            raise TypeError(f"columns: expected a mapping {{feature name: [values]}}, received "
                            f"{type(columns).__name__}.")
        self._check_names(columns.keys(), "columns")
        lists = {name: self._column(name, columns[name]) for name in self.input_specs}
        lengths = {name: len(values) for name, values in lists.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"columns: every feature needs the same number of rows, received {lengths}.")
        return {name: [self._value(name, value, row) for row, value in enumerate(values)]
                for name, values in lists.items()}

    def rows_to_columns(self, rows: Sequence[Mapping[str, object]]) -> Dict[str, List[Any]]:
        """Checked columns of a list (or any iterable) of row dicts."""
        if isinstance(rows, (Mapping, str, bytes)):
            raise TypeError(f"rows: expected a list of {{feature name: value}} dicts, received one "
                            f"{type(rows).__name__}.")
        rows = list(rows)
        if not rows:
            raise ValueError("rows: a request in row form needs at least one row (TF Serving refuses an empty "
                             "'instances' list; send columns for an empty batch).")
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise TypeError(f"rows: row {index} is a {type(row).__name__}, expected a dict of feature values.")
            self._check_names(row.keys(), f"row {index}")
        return self.columns({name: [row[name] for row in rows] for name in self.input_specs})

    # --- request formats ----------------------------------------------------------------------------------------

    def rest_rows(self, rows: Sequence[Mapping[str, object]]) -> Dict[str, Any]:
        """The REST body in row form: `{"signature_name": ..., "instances": [{name: value, ...}, ...]}`."""
        columns = self.rows_to_columns(rows)
        count = len(next(iter(columns.values())))
        instances = [{name: columns[name][index] for name in self.input_specs} for index in range(count)]
        return {"signature_name": self.signature_name, "instances": instances}

    def rest_columns(self, columns: Mapping[str, Sequence[Any]]) -> Dict[str, Any]:
        """The REST body in columnar form: `{"signature_name": ..., "inputs": {name: [values], ...}}`."""
        return {"signature_name": self.signature_name, "inputs": self.columns(columns)}

    def tensors(self, columns: Mapping[str, Sequence[Any]]) -> Dict[str, tf.Tensor]:
        """Checked columns as the signature's input tensors, for calling a loaded SavedModel in process:
        `loaded.signatures["serving_default"](**builder.tensors(columns))`.

        A wrong value fails here naming the feature and row; the signature itself names only the input's position
        (`input #2(zero-based) was expected to be a double tensor but is a string tensor`).

        Example:
            >>> specs = {"city": tf.TensorSpec([None], tf.string), "age": tf.TensorSpec([None], tf.float64)}
            >>> RequestBuilder(specs).tensors({"city": ["paris"], "age": [None]})["age"].numpy()
            array([nan])
        """
        checked = self.columns(columns)
        return {name: tf.constant(checked[name], dtype=spec.dtype, shape=[len(checked[name])])
                for name, spec in self.input_specs.items()}

    def predict_request(self, columns: Mapping[str, Sequence[Any]], model_name: str,
                        version: Optional[int] = None) -> "predict_pb2.PredictRequest":
        """The gRPC `tensorflow_serving.apis.predict_pb2.PredictRequest` for `columns`.

        Example:
            >>> request = builder.predict_request({"city": ["paris"], "age": [31]}, "ctr")  # doctest: +SKIP
            >>> stub.Predict(request, timeout=1.0)  # doctest: +SKIP
        """
        from tensorflow_serving.apis import predict_pb2

        version = check_version(version)
        if not isinstance(model_name, str) or not model_name:
            raise ValueError(f"predict_request: `model_name` must be the served model's name, received "
                             f"{model_name!r}.")
        checked = self.columns(columns)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = self.signature_name
        if version is not None:
            request.model_spec.version.value = version
        for name, spec in self.input_specs.items():
            values = checked[name]
            if spec.dtype == tf.string:
                array = np.array([value.encode("utf-8") for value in values], dtype=object)
            else:
                array = np.array(values, dtype=spec.dtype.as_numpy_dtype)
            request.inputs[name].CopyFrom(tf.make_tensor_proto(array, dtype=spec.dtype))
        return request

    def predict_request_from_rows(self, rows: Sequence[Mapping[str, object]], model_name: str,
                                  version: Optional[int] = None) -> "predict_pb2.PredictRequest":
        """The gRPC `PredictRequest` for a list of row dicts."""
        return self.predict_request(self.rows_to_columns(rows), model_name, version)


def rest_url(host: str, port: int, model_name: str, version: Optional[int] = None) -> str:
    """TF Serving's REST predict URL, e.g. `http://localhost:8501/v1/models/ctr:predict`."""
    version = check_version(version)
    version_part = f"/versions/{version}" if version is not None else ""
    return f"http://{host}:{int(port)}/v1/models/{model_name}{version_part}:predict"


# --- what the server does with a request ------------------------------------------------------------------------

def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    names: Dict[type, str] = {dict: "Object", list: "Array", str: "String"}
    return names.get(type(value), "Number")


def _tf_type_name(dtype: tf.DType) -> str:
    """The dtype as TensorFlow's C++ `DataTypeString` (and so TF Serving's messages) spells it: "double", "float"."""
    return {tf.float64: "double", tf.float32: "float", tf.float16: "half"}.get(dtype, dtype.name)


def _rest_value(value: Any, dtype: tf.DType, where: str) -> Any:
    """One JSON value as TF Serving's AddValueToTensor converts it, or its error."""
    def type_error() -> ValueError:
        return ValueError(f"{where}: JSON Value: {json.dumps(value)[:80]} Type: {_json_type(value)} is not of "
                          f"expected type: {_tf_type_name(dtype)}")

    if dtype == tf.string:
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, Mapping) and set(value) == {"b64"} and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"{where}: Unable to base64 decode {value['b64'][:40]!r}.") from None
        raise type_error()
    if dtype == tf.bool:
        if not isinstance(value, bool):
            raise type_error()
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise type_error()
    if dtype.is_integer:
        if not isinstance(value, int):  # JSON 3.0 is a double, not an integer
            raise type_error()
        low, high = _integer_range(dtype)
        if not low <= value <= high:
            raise type_error()
        return value
    limit = _lossless_limit(dtype)
    if isinstance(value, int) and limit is not None and abs(value) > limit:
        raise ValueError(f"{where}: Cannot convert JSON value: {value} to {_tf_type_name(dtype)} without loss of "
                         "precision.")
    if dtype == tf.float32 and math.isfinite(value) and abs(value) > float(np.finfo(np.float32).max):
        raise ValueError(f"{where}: Cannot convert JSON value: {value} to float without loss of precision.")
    return value


def _rest_column(values: Any, name: str, dtype: tf.DType, where: str) -> List[Any]:
    """A rank-1 input's values from the columnar form (a list of scalars, possibly empty)."""
    if not isinstance(values, list):
        raise ValueError(f"{where}: input {name!r} takes shape [batch]: expected a list of values, received a JSON "
                         f"{_json_type(values)}.")
    column = []
    for row, value in enumerate(values):
        if isinstance(value, list):
            raise ValueError(f"{where}: input {name!r} takes shape [batch]: element {row} is a list nested deeper "
                             "than the signature's rank 1.")
        column.append(_rest_value(value, dtype, f"{where}[{row}]"))
    return column


def decode_rest_request(body: Union[str, bytes, Mapping[str, Any]], input_specs: Mapping[str, tf.TensorSpec],
                        signature_name: str = SERVING_SIGNATURE) -> Dict[str, tf.Tensor]:
    """The input tensors TF Serving makes of a REST predict body (row or columnar form) for a signature of rank-1
    (`[batch]`) inputs, with TF Serving's refusals.

    Follows tensorflow_serving/util/json_tensor.cc: the body is a JSON object (NaN / Infinity tokens allowed); an
    optional string `signature_name` (it must name this signature); exactly one of `instances` / `inputs`.
    `instances` is a non-empty list of objects whose keys are exactly the signature's inputs (a plain list only for
    a single-input signature). `inputs` is an object with every input (extra keys are ignored, as TF Serving does),
    or a plain list for a single-input signature; its lists may be empty (a batch of 0). Each value must have the
    input's JSON type: strings (or `{"b64": ...}` objects) for string inputs, JSON integers within range for
    integer inputs, numbers that convert without loss of precision for float inputs; bool and null are never numbers.

    Example:
        >>> decode_rest_request('{"inputs": {"age": [31.0]}}', {"age": tf.TensorSpec([None], tf.float64)})
        {'age': <tf.Tensor: shape=(1,), dtype=float64, numpy=array([31.])>}
    """
    if isinstance(body, (str, bytes)):
        if not body:
            raise ValueError("JSON Parse error: The document is empty")
        try:
            document = json.loads(body)
        except ValueError as error:
            raise ValueError(f"JSON Parse error: {error}") from None
    else:
        document = body
    if not isinstance(document, Mapping):
        raise ValueError(f"JSON Value: {str(document)[:80]} Is not object")
    if "signature_name" in document:
        if not isinstance(document["signature_name"], str):
            raise ValueError("'signature_name' key must be a string value.")
        if document["signature_name"] != signature_name:
            raise ValueError(f"the request addresses signature {document['signature_name']!r}; these inputs are "
                             f"those of {signature_name!r}.")
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise ValueError("Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist.")
    if not has_instances and not has_inputs:
        raise ValueError("Missing 'inputs' or 'instances' key.")
    names = list(input_specs)
    columns: Dict[str, List[Any]] = {name: [] for name in names}
    if has_instances:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise ValueError("Excepting 'instances' to be an list/array.")
        if not instances:
            raise ValueError("No values in 'instances' array.")
        named = isinstance(instances[0], Mapping) and set(instances[0]) != {"b64"}
        if not named and len(names) > 1:
            raise ValueError("instances is a plain list, but expecting list of objects as multiple input tensors "
                             "required as per tensorinfo_map.")
        for index, instance in enumerate(instances):
            if not named:
                if isinstance(instance, list):
                    raise ValueError(f"Failed to process element: {index} of 'instances' list: input {names[0]!r} "
                                     "takes one value per instance.")
                columns[names[0]].append(_rest_value(instance, input_specs[names[0]].dtype, f"instance {index}"))
                continue
            if not isinstance(instance, Mapping):
                raise ValueError(f"Expecting object but got {_json_type(instance)} at item {index} of input list.")
            for name, value in instance.items():
                if name not in input_specs:
                    raise ValueError(f"Failed to process element: {index} key: {name} of 'instances' list. Error: "
                                     f"JSON object: does not have named input: {name}")
                if isinstance(value, list):
                    raise ValueError(f"Failed to process element: {index} key: {name} of 'instances' list: the "
                                     "signature takes one value per instance (shape [batch]), received a list.")
                columns[name].append(_rest_value(  # TF Serving's wording, which names the key
                    value, input_specs[name].dtype,
                    f"Failed to process element: {index} key: {name} of 'instances' list. Error"))
            if set(instance) != set(names):
                raise ValueError(f"Failed to process element: {index} of 'instances' list. JSON object keys must be "
                                 f"equal to: {','.join(sorted(names))} (missing {sorted(set(names) - set(instance))}).")
    else:
        inputs = document["inputs"]
        if not isinstance(inputs, Mapping) or set(inputs) == {"b64"}:
            if len(names) > 1:
                raise ValueError("inputs is a plain value/list, but expecting an object as multiple input tensors "
                                 "required as per tensorinfo_map.")
            inputs = {names[0]: inputs}
        for name in names:
            if name not in inputs:
                raise ValueError(f"Missing named input: {name} in 'inputs' object.")
            columns[name] = _rest_column(inputs[name], name, input_specs[name].dtype, f"inputs[{name!r}]")
    return {name: tf.constant(values, dtype=input_specs[name].dtype, shape=[len(values)])
            for name, values in columns.items()}


def decode_predict_request(request: "predict_pb2.PredictRequest") -> Dict[str, tf.Tensor]:
    """The input tensors of a gRPC `PredictRequest` (`tf.make_ndarray` of each `TensorProto`)."""
    return {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
