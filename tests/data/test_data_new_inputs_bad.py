"""Bad input for bags and numeric treatments (docs/inputs.md, "Bad input"), the cases the other numeric and bag tests
leave out: empty lists in every spelling, a list of 10,000 values, separators inside quotes, and text, NaN or
infinity in each numeric treatment under strict mode. Each case is built by the columnar engine and, where it reaches
serving, encoded by the export's in-graph encoder from the same cells."""

import resource

import numpy as np
import pytest

from tf_multiembed.data import Schema, prepare_dataset, raw_features_from_cells
from tf_multiembed.data.quality import BadInputError, SkippedInputWarning

BAG = {"name": "tags", "kind": "bag", "separator": "|", "max_values": 3}


def _schema(fields, **settings):
    return Schema.from_dict({"name": "bad", "label": {"column": "click"}, "fields": fields,
                             "vocabulary_order": "sorted", **settings})


def _build(tmp_path, schema, lines, header="click,user,tags", name="clicks.csv", **options):
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_text("\n".join([header] + list(lines)) + "\n")
    options = {"split": "time", "split_fractions": (1.0, 0.0, 0.0), **options}
    return path, prepare_dataset(schema, path, tmp_path / "cache", **options)


def _encoded(data, schema, columns):
    return data.feature_encoder()(raw_features_from_cells(schema, columns)).numpy()


def test_an_empty_list_in_every_spelling_is_an_empty_bag_kept_not_skipped(tmp_path):
    # "", "|", "||" and a bag of empty values around one value: empty values are dropped, the row is kept.
    schema = _schema([{"name": "user"}, BAG])
    cells = ["", "|", "||", "|jazz|", "rock||jazz"]
    _, data = _build(tmp_path, schema, [f"{index % 2},u{index},{cell}" for index, cell in enumerate(cells)])
    report = data.report
    assert report.rows_valid == 5 and report.rows_skipped == 0 and report.values_truncated == {}
    ids, _ = data.numpy_split("train")
    # sorted vocabulary: jazz = 1, rock = 2; -1 pads (the layer pools an all-padding bag to the zero vector).
    expected = [[-1, -1, -1], [-1, -1, -1], [-1, -1, -1], [1, -1, -1], [2, 1, -1]]
    np.testing.assert_array_equal(ids[:, 1:], expected)
    served = _encoded(data, schema, {"user": [f"u{index}" for index in range(5)], "tags": cells})
    np.testing.assert_array_equal(served[:, 1:], expected)

    # With a missing token, an empty bag is that one token (a learned "no tags" row), at build and at serving.
    schema = _schema([{"name": "user"}, {**BAG, "missing_token": "none"}])
    _, data = _build(tmp_path / "token", schema, [f"{index % 2},u{index},{cell}" for index, cell in enumerate(cells)])
    ids, _ = data.numpy_split("train")
    none = 2  # sorted: jazz, none, rock
    np.testing.assert_array_equal(ids[:, 1:], [[none, -1, -1]] * 3 + [[1, -1, -1], [3, 1, -1]])
    np.testing.assert_array_equal(_encoded(data, schema, {"user": [f"u{i}" for i in range(5)], "tags": cells}),
                                  ids)


def test_a_list_of_ten_thousand_values_keeps_its_first_values_and_is_counted(tmp_path):
    schema = _schema([{"name": "user"}, BAG])
    long_cell = "|".join(f"v{index}" for index in range(10_000))  # 10,000 distinct values, 68 kB in one cell
    lines = [f"1,u0,{long_cell}", "0,u1,v2|v9999", f"1,u2,{long_cell}", "0,u3,"]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.warns(SkippedInputWarning, match=r"cells with more values than slots \(extra values dropped\): "
                                                 r"\{'tags': 2\}"):
        _, data = _build(tmp_path, schema, lines)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    # Counted, not silent: two cells lost values, in the report and in the build's warning.
    assert data.report.rows_valid == 4 and data.report.values_truncated == {"tags": 2}
    # Only the kept values enter the vocabulary: v0, v1, v2 (3 times) and v9999 from the short row.
    assert data.vocabulary_sizes[1] == 5
    ids, _ = data.numpy_split("train")
    np.testing.assert_array_equal(ids[:, 1:], [[1, 2, 3], [3, 4, -1], [1, 2, 3], [-1, -1, -1]])
    served = _encoded(data, schema, {"user": ["u0", "u1", "u2", "u3"], "tags": [line.split(",")[2] for line in lines]})
    np.testing.assert_array_equal(served, ids)
    assert grown_mb < 200, f"building 2 rows of 10,000 values grew the peak memory by {grown_mb:.0f} MB"


def test_quoted_cells_are_one_cell_and_the_bag_separator_always_splits(tmp_path):
    # With `quotechar`, a quoted cell is one cell even with the CSV delimiter inside; within a bag the separator
    # always splits, quotes or not (the bag's values are text, quotes are kept as characters of a value).
    schema = _schema([{"name": "city"}, BAG], quotechar='"')
    lines = ['1,"Paris, France","rock,pop|jazz"', '0,Lyon,"""a|b""|c"', '1,"Nice",jazz']
    _, data = _build(tmp_path, schema, lines, header="click,city,tags")
    assert data.report.rows_valid == 3 and data.report.rows_skipped == 0
    cities = [line for line in (tmp_path / "cache").rglob("city.txt")][0].read_text().split("\n")
    assert "Paris, France" in cities and "Nice" in cities
    tags = [line for line in (tmp_path / "cache").rglob("tags_0.txt")][0].read_text().split("\n")
    assert {"rock,pop", "jazz", '"a', 'b"', "c"} <= set(tags) and "a|b" not in tags
    ids, _ = data.numpy_split("train")
    # The cells the CSV module reads are what a client sends at serving: same ids.
    cells = {"city": ["Paris, France", "Lyon", "Nice"], "tags": ["rock,pop|jazz", '"a|b"|c', "jazz"]}
    np.testing.assert_array_equal(_encoded(data, schema, cells), ids)
    assert (ids[1, 1:] > 0).all()  # '"a', 'b"', 'c': three values

    # Without `quotechar` the quotes are text and the delimiter splits: a wrong column count, skipped and named,
    # with the advice to set `quotechar`.
    plain = _schema([{"name": "city"}, BAG])
    with pytest.warns(SkippedInputWarning, match="wrong_column_count: 1"):
        path, data = _build(tmp_path / "plain", plain, lines + ["0,Lyon,jazz"], header="click,city,tags",
                            max_skipped_fraction=0.9)
    assert data.report.skipped_by_reason == {"wrong_column_count": 1} and data.report.rows_valid == 3
    assert any(f"{path}:2: " in line for line in data.report.first_bad_lines)


@pytest.mark.parametrize("treatment", [{"treatment": "bucketized", "boundaries": [1.0, 2.0]},
                                       {"treatment": "embedded"}, {"treatment": "dense"}])
@pytest.mark.parametrize("cell, reason", [("abc", "not a number in a numeric field (x: 'abc' is not a number)"),
                                          ("-inf", "NaN or infinity in a numeric field (x: '-inf' is not a finite "
                                                   "number)"),
                                          ("NaN", "NaN or infinity in a numeric field (x: 'NaN' is not a finite "
                                                  "number)")])
def test_text_nan_and_infinity_under_strict_are_one_line_naming_file_line_and_field(tmp_path, treatment, cell,
                                                                                    reason):
    schema = _schema([{"name": "user"}, {"name": "x", "kind": "numeric", **treatment}])
    lines = ["1,a,0.5", "0,b,", "1,c,2.5", f"0,d,{cell}", "1,e,3"]
    with pytest.raises(BadInputError) as error:
        _build(tmp_path, schema, lines, header="click,user,x", strict=True)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'clicks.csv'}:5: {reason}"), message
    # Without strict: skipped and counted under its reason, the empty cell is a counted missing value.
    expected_reason = "non_numeric" if cell == "abc" else "non_finite"
    with pytest.warns(SkippedInputWarning, match=f"{expected_reason}: 1"):
        _, data = _build(tmp_path / "lenient", schema, lines, header="click,user,x", max_skipped_fraction=0.5)
    assert data.report.skipped_by_reason == {expected_reason: 1} and data.report.rows_valid == 4
    assert data.report.numeric_missing == {"x": 1}
