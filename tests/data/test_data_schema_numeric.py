import json

import pytest

from tf_multiembed.data.schema import FieldSpec, LabelSpec, Schema, criteo_schema


def _schema(*fields):
    return Schema("toy", fields=(FieldSpec("user"),) + fields, label=LabelSpec("click"))


def test_treatments_and_their_columns():
    schema = _schema(FieldSpec("age", kind="numeric", treatment="bucketized", boundaries=[18, 30.5, 60]),
                     FieldSpec("price", kind="numeric", treatment="embedded", normalization="log1p_standard"),
                     FieldSpec("score", kind="numeric", treatment="dense"),
                     FieldSpec("visits", kind="numeric", treatment="bucketized", num_buckets=4))
    # Bucketized fields are id columns; embedded and dense fields are float inputs, not id columns.
    assert schema.field_names == ("user", "age", "visits")
    assert [f.name for f in schema.embedded_fields] == ["price"] and [f.name for f in schema.dense_fields] == ["score"]
    assert schema.fields[1].boundaries == (18.0, 30.5, 60.0)
    assert schema.fields[3].normalization == "standard"  # the default of embedded and dense fields
    assert schema.resolved_min_counts() == {"user": 1, "age": None, "price": None, "score": None, "visits": None}
    assert Schema.from_dict(json.loads(schema.to_json())) == schema
    assert schema.with_min_count(3).fields[1:] == schema.fields[1:]


def test_the_paper_schemas_dicts_are_unchanged():
    # Cache keys hash schema.to_dict(): the new keys appear only when set.
    assert "treatment" not in criteo_schema().fields[0].to_dict()
    assert "boundaries" not in FieldSpec("user").to_dict()


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="categorical", treatment="dense"), "`treatment` applies to numeric fields only"),
    (dict(treatment="quantile"), "`treatment` must be one of ['bucketized', 'embedded', 'dense']"),
    (dict(treatment="bucketized", boundaries=[1, 3, 2]),
     "field 'x': `boundaries` must be strictly increasing; entry 2 (2.0) is not above entry 1 (3.0)."),
    (dict(treatment="bucketized", boundaries=[1, float("inf")]), "`boundaries` must hold finite numbers"),
    (dict(treatment="bucketized", boundaries=[]), "`boundaries` must be a non-empty list of numbers"),
    (dict(treatment="bucketized"), "a bucketized field needs exactly one of `boundaries`"),
    (dict(treatment="bucketized", boundaries=[1], num_buckets=3), "a bucketized field needs exactly one of"),
    (dict(treatment="bucketized", num_buckets=1), "`num_buckets` must be an integer >= 2, got 1."),
    (dict(treatment="bucketized", num_buckets=3, normalization="standard"), "`normalization` applies to embedded"),
    (dict(treatment="embedded", boundaries=[1]), "`boundaries` applies to bucketized fields only"),
    (dict(treatment="dense", normalization="zscore"), "`normalization` must be one of ['standard', 'log1p_standard']"),
    (dict(treatment="embedded", min_count=2), "`min_count` belongs to vocabulary fields"),
    (dict(treatment="embedded", hash_buckets=10), "`hash_buckets` belongs to vocabulary fields"),
    (dict(treatment="dense", transform="identity"), "transform 'identity' reads string values"),
    (dict(boundaries=[1, 2]), "`boundaries` needs a numeric `treatment`"),
])
def test_bad_settings_name_the_field(kwargs, message):
    kwargs = {"kind": "numeric", **kwargs}
    with pytest.raises(ValueError) as error:
        FieldSpec("x", **kwargs)
    assert message in str(error.value) and "field 'x'" in str(error.value)


def test_a_schema_file_error_names_the_file_and_field(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text(json.dumps({"name": "toy", "label": {"column": "click"}, "fields": [
        {"name": "age", "kind": "numeric", "treatment": "bucketized", "boundaries": [5, 5]}]}))
    with pytest.raises(ValueError, match=r"schema.json: field #0 \('age'\): field 'age': `boundaries` must be "
                                         r"strictly increasing"):
        Schema.from_file(path)
