"""Schemas: the built-in data sets, schema files (JSON/YAML) and their validation errors."""

import json

import pytest

from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data.schema import FieldSpec, LabelSpec, Schema


def test_criteo_schema_has_13_bucketed_and_26_categorical_fields():
    schema = schema_lib.criteo_schema()
    assert schema.num_fields == 39
    assert schema.field_names[:2] == ("I1", "I2") and schema.field_names[-1] == "C26"
    assert {field.kind for field in schema.fields[:13]} == {"numeric"}
    assert {field.transform for field in schema.fields[:13]} == {"criteo_log_bucket"}
    assert {field.kind for field in schema.fields[13:]} == {"categorical"}
    assert {field.min_count for field in schema.fields} == {10}
    assert {field.missing_token for field in schema.fields} == {"NULL"}
    assert schema.column_names[0] == "label" and len(schema.column_names) == 40
    assert (schema.delimiter, schema.has_header) == ("\t", False)


def test_avazu_schema_drops_id_and_keeps_hour_as_a_category():
    schema = schema_lib.avazu_schema()
    assert schema.num_fields == 22
    assert "id" not in schema.field_names and "click" not in schema.field_names
    assert schema.field_names[0] == "hour" and schema.fields[0].kind == "categorical"
    assert schema.label == LabelSpec("click")
    assert {field.min_count for field in schema.fields} == {4}
    assert schema.time_column == "hour"


def test_movielens_schema_matches_the_reference_protocol():
    schema = schema_lib.movielens_schema()
    assert schema.field_names == ("user_id", "item_id", "age", "gender", "occupation", "zip_code", "release_year",
                                  "genres")
    assert {field.kind for field in schema.fields} == {"categorical"} and {f.min_count for f in schema.fields} == {1}
    assert schema.label == LabelSpec("rating", rule="threshold", threshold=4.0)


def test_movielens_genre_slots_expand_into_slot_fields():
    schema = schema_lib.movielens_schema(genre_slots=3)
    assert schema.field_names[-3:] == ("genres_0", "genres_1", "genres_2")
    assert schema.num_fields == 10


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_schema_file_round_trip(tmp_path, suffix):
    schema = Schema(
        name="clicks", label=LabelSpec("clicked"), time_column="ts", delimiter=";", quotechar='"',
        fields=(FieldSpec("user", column="user_id", min_count=2, missing_token="NONE"),
                FieldSpec("price", kind="numeric"),
                FieldSpec("tags", kind="multi_categorical", separator="|", max_values=2, max_tokens=100)))
    path = tmp_path / f"schema{suffix}"
    schema.to_file(path)
    assert Schema.from_file(path) == schema
    assert schema.field_names == ("user", "price", "tags_0", "tags_1")


def test_schema_file_written_by_hand_in_yaml(tmp_path):
    path = tmp_path / "logs.yml"
    path.write_text("name: logs\nhas_header: false\ncolumns_ignored: 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"logs.yml: unknown schema keys \['columns_ignored'\]"):
        Schema.from_file(path)
    path.write_text("name: logs\nhas_header: false\ncolumn_names: [y, a, b]\ndelimiter: \"\\t\"\n"
                    "label: {column: y}\nfields:\n  - {name: a}\n  - {name: b, kind: numeric, min_count: 3}\n",
                    encoding="utf-8")
    schema = Schema.from_file(path)
    assert schema.field_names == ("a", "b") and schema.fields[1].transform == "criteo_log_bucket"
    assert schema.delimiter == "\t" and schema.column_names == ("y", "a", "b")


@pytest.mark.parametrize("field, message", [
    ({"name": "a", "kind": "dense"}, r"\('a'\).*`kind` must be one of"),
    ({"name": "a", "colour": "red"}, r"\('a'\): unknown keys \['colour'\]"),
    ({"kind": "categorical"}, r"\(None\): the field lacks the required key 'name'"),
    ({"name": "a", "min_count": 0}, r"\('a'\).*`min_count` must be an integer >= 1, got 0"),
    ({"name": "a", "kind": "multi_categorical"}, r"needs `max_values` >= 1"),
    ({"name": "a", "kind": "numeric", "transform": "identity"}, r"transform 'identity' reads string values"),
    ({"name": "a", "transform": "criteo_log_bucket"}, r"a categorical field needs a string transform"),
])
def test_bad_field_entries_name_the_file_and_field(tmp_path, field, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "x", "label": {"column": "y"}, "fields": [field]}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.json: field #0 .*" + message):
        Schema.from_file(path)


def test_invalid_json_reports_the_position(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x",\n "fields": [}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken.json: not valid JSON \(line 2"):
        Schema.from_file(path)


def test_missing_schema_file():
    with pytest.raises(FileNotFoundError, match="nowhere.yaml does not exist"):
        Schema.from_file("nowhere.yaml")


@pytest.mark.parametrize("kwargs, message", [
    ({"has_header": False}, "a headerless delimited file needs `column_names`"),
    ({"column_names": ("y", "b")}, r"`column_names` lacks the columns \['a'\]"),
    ({"label": LabelSpec("a")}, "the label column 'a' is also a feature column"),
    ({"fields": (FieldSpec("a"), FieldSpec("a", column="b"))}, r"repeated: \['a'\]"),
    ({"delimiter": "::"}, "`delimiter` must be one character"),
    ({"vocabulary_order": "random"}, "`vocabulary_order` must be one of"),
    ({"reader": "orc"}, "`reader` must be one of"),
])
def test_schema_validation_errors(kwargs, message):
    arguments = {"name": "x", "fields": (FieldSpec("a"),), "label": LabelSpec("y"), **kwargs}
    with pytest.raises(ValueError, match=message):
        Schema(**arguments)


def test_threshold_label_needs_a_threshold():
    with pytest.raises(ValueError, match="needs a numeric `threshold`"):
        LabelSpec("rating", rule="threshold")


def test_resolve_schema_from_name_file_or_instance(tmp_path):
    assert schema_lib.resolve_schema("avazu") == schema_lib.avazu_schema()
    schema = schema_lib.movielens_schema()
    assert schema_lib.resolve_schema(schema) is schema
    path = tmp_path / "s.json"
    schema.to_file(path)
    assert schema_lib.resolve_schema(str(path)) == schema
    with pytest.raises(ValueError, match="Cannot resolve the schema 'kaggle'"):
        schema_lib.resolve_schema("kaggle")


def test_schema_wide_min_count_is_inherited_and_recorded(tmp_path):
    from data_test_files import write_lines
    from tf_multiembed.data import prepare_dataset
    from tf_multiembed.data.vocabulary import read_vocabulary

    path = tmp_path / "clicks.yaml"
    path.write_text("name: clicks\nlabel: {column: y}\nmin_count: 2\nfields:\n  - {name: a}\n"
                    "  - {name: b, min_count: 1}\n  - {name: c, hash_buckets: 8}\n", encoding="utf-8")
    schema = Schema.from_file(path)
    assert schema.resolved_min_counts() == {"a": 2, "b": 1, "c": None}
    assert Schema.from_dict(schema.to_dict()) == schema
    csv = write_lines(tmp_path / "clicks.csv", ["y,a,b,c", "1,x,p,k", "0,x,q,k", "1,y,q,k"])
    data = prepare_dataset(schema, csv, tmp_path / "cache")
    vocabularies = {name: read_vocabulary(file) for name, file in data.vocabulary_files().items()}
    assert vocabularies == {"a": ["x"], "b": ["q", "p"]}
    assert data.min_counts == {"a": 2, "b": 1, "c": None}


def test_a_default_min_count_is_logged_not_silent(tmp_path, caplog):
    from data_test_files import write_lines
    from tf_multiembed.data import prepare_dataset

    schema = Schema("plain", fields=(FieldSpec("a"), FieldSpec("b", min_count=3)), label=LabelSpec("y"))
    assert schema.fields_with_default_min_count() == ("a",)
    with caplog.at_level("INFO", logger="tf_multiembed.data.build"):
        data = prepare_dataset(schema, write_lines(tmp_path / "p.csv", ["y,a,b", "1,x,p"]), tmp_path / "cache")
    assert "fields ['a'] set no min_count and the schema none: they use min_count 1" in caplog.text
    assert data.min_counts == {"a": 1, "b": 3}
    with pytest.raises(ValueError, match=r"schema 'x': `min_count` must be an integer >= 1, got 0"):
        Schema("x", fields=(FieldSpec("a"),), label=LabelSpec("y"), min_count=0)
