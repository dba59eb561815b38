"""Bad input: skipped and counted with a warning naming file:line, strict mode, the skipped-share limit, files."""

import re

import pytest

from data_test_files import SMALL_CRITEO_LINES, small_criteo_schema, write_grouplens, write_lines
from tf_multiembed.data import prepare_dataset
from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data.quality import BadInputError, SkippedInputWarning, TooManyBadRowsError
from tf_multiembed.data.schema import FieldSpec, LabelSpec, Schema

BAD_LINES = [
    "1\t5\t\taa\tx",         # 1 good
    "0\t5\taa\tx",           # 2 four columns
    "1\tfive\t3\taa\tx",     # 3 a word in an integer column
    b"0\t5\t3\t\xff\tx",     # 4 not UTF-8
    "2\t5\t3\taa\tx",        # 5 label 2
    "0\t0\t3\tbb\ty",        # 6 good
    "",                      # 7 blank
    "1\t1000\t-1\taa\ty",    # 8 good
]


def _bad_file(tmp_path):
    return write_lines(tmp_path / "bad.tsv", BAD_LINES)


def test_bad_lines_are_skipped_counted_and_named(tmp_path):
    path = _bad_file(tmp_path)
    with pytest.warns(SkippedInputWarning) as record:
        data = prepare_dataset(small_criteo_schema(min_count=1), path, tmp_path / "cache", max_skipped_fraction=0.7)
    message = str(record[0].message)
    assert "skipped 5 of 8 lines (62.50%" in message
    for line, reason in ((2, "wrong number of columns"), (3, "not a number in a numeric field"),
                         (4, "not valid text in the file's encoding"), (5, "bad label"),
                         (7, "wrong number of columns")):
        assert re.search(rf"bad.tsv:{line}: {re.escape(reason)}", message), (line, message)
    report = data.report
    assert report.skipped_by_reason == {"wrong_column_count": 2, "non_numeric": 1, "bad_encoding": 1, "bad_label": 1}
    assert (report.lines_read, report.rows_valid, report.rows_skipped) == (8, 3, 5)
    assert report.lines_read == report.rows_valid + report.rows_skipped
    assert report.rows_valid == sum(report.rows_written.values()) == sum(data.split_rows.values())
    assert report.first_bad_lines[0].endswith("bad.tsv:2: wrong number of columns (4 columns, expected 5)")
    assert "I1: expected a number, got 'five'" in report.first_bad_lines[1]


def test_strict_mode_stops_at_the_first_bad_line(tmp_path):
    path = _bad_file(tmp_path)
    with pytest.raises(BadInputError, match=r"bad.tsv:2: wrong number of columns \(4 columns, expected 5\)\. Strict"):
        prepare_dataset(small_criteo_schema(), path, tmp_path / "cache", strict=True)
    assert not any((tmp_path / "cache").iterdir())


def test_strict_mode_reports_the_earliest_line_whatever_finds_it(tmp_path):
    # Line 1's label is found by the parser, line 2's column count by the reader: line 1 must be reported.
    path = write_lines(tmp_path / "bad.tsv", ["x\t5\t\taa\tx", "0\t5"])
    with pytest.raises(BadInputError, match=r"bad.tsv:1: bad label \(label 'x', expected 0 or 1\)"):
        prepare_dataset(small_criteo_schema(), path, tmp_path / "cache", strict=True)


def test_too_many_bad_lines_fail_with_a_clear_message(tmp_path):
    path = _bad_file(tmp_path)
    with pytest.warns(SkippedInputWarning):
        with pytest.raises(TooManyBadRowsError, match=r"5 of 8 lines \(62\.50%\) were bad, more than the allowed "
                                                      r"1\.00% \(max_skipped_fraction\).*bad.tsv:2"):
            prepare_dataset(small_criteo_schema(), path, tmp_path / "cache")


def test_a_share_at_the_limit_is_accepted(tmp_path):
    path = write_lines(tmp_path / "data.tsv", SMALL_CRITEO_LINES * 33 + ["bad"])  # 1 of 199 lines
    with pytest.warns(SkippedInputWarning, match=r"data.tsv:199: wrong number of columns \(1 columns, expected 5\)"):
        data = prepare_dataset(small_criteo_schema(), path, tmp_path / "cache")
    assert data.report.rows_valid == 198


def test_missing_and_empty_files_are_skipped_and_listed(tmp_path):
    good = write_lines(tmp_path / "good.tsv", SMALL_CRITEO_LINES)
    empty = write_lines(tmp_path / "empty.tsv", [])
    missing = tmp_path / "missing.tsv"
    with pytest.warns(SkippedInputWarning, match=r"missing input files skipped: \[.*missing.tsv'\] \| empty input "
                                                 r"files skipped: \[.*empty.tsv'\]"):
        data = prepare_dataset(small_criteo_schema(), [good, empty, missing], tmp_path / "cache")
    assert data.report.files_missing == [str(missing)] and data.report.files_empty == [str(empty)]
    assert data.report.rows_valid == 6
    with pytest.raises(BadInputError, match="missing.tsv does not exist"):
        prepare_dataset(small_criteo_schema(), [good, missing], tmp_path / "cache", strict=True)
    with pytest.raises(BadInputError, match="empty.tsv has no data lines"):
        prepare_dataset(small_criteo_schema(), [good, empty], tmp_path / "cache", strict=True)


def test_header_only_file_is_empty_and_no_rows_at_all_fails(tmp_path):
    path = write_lines(tmp_path / "header.csv", ["y,a"])
    schema = Schema("h", fields=(FieldSpec("a"),), label=LabelSpec("y"))
    with pytest.warns(SkippedInputWarning, match="empty input files skipped"):
        with pytest.raises(BadInputError, match=r"No valid rows were read from .*header.csv.*0 data lines read"):
            prepare_dataset(schema, path, tmp_path / "cache")
    with pytest.warns(SkippedInputWarning, match="missing input files skipped"):
        with pytest.raises(BadInputError, match="No valid rows"):
            prepare_dataset(schema, tmp_path / "nothing.csv", tmp_path / "cache")


def test_threshold_label_and_time_values_must_be_numbers(tmp_path, quiet_warnings):
    schema = Schema("r", fields=(FieldSpec("a"),), label=LabelSpec("rating", rule="threshold", threshold=4),
                    time_column="ts")
    path = write_lines(tmp_path / "r.csv", ["rating,a,ts", "5,x,1", "four,x,2", "3,y,later", "4,y,3"])
    data = prepare_dataset(schema, path, tmp_path / "cache", split="time", split_fractions=(1, 0, 0),
                           max_skipped_fraction=0.5)
    assert data.report.skipped_by_reason == {"bad_label": 1, "bad_time": 1}
    assert data.numpy_split("train")[1].tolist() == [1.0, 1.0]  # ratings 5 and 4 (>= 4)


def test_movielens_ratings_of_unknown_users_are_counted(tmp_path):
    folder = write_grouplens(tmp_path / "ml", ratings=[(1, 10, 5, 1), (2, 10, 3, 2), (1, 10, 1, 3), (9, 10, 4, 4)],
                             users=[(1, 24, "M", "x", "1"), (2, 30, "F", "y", "2")],
                             items=[(10, "t", "01-Jan-1995", "0" * 18 + "1")])
    with pytest.warns(SkippedInputWarning, match=r"u.data:4: user absent from the user table \(user_id '9'\)"):
        data = prepare_dataset(schema_lib.movielens_schema(), folder, tmp_path / "cache", max_skipped_fraction=0.3)
    assert data.report.skipped_by_reason == {"unknown_user": 1} and data.report.rows_valid == 3


def test_bad_lines_in_movielens_side_tables_are_warned_about(tmp_path):
    folder = write_grouplens(tmp_path / "ml", ratings=[(1, 10, 5, 1), (2, 10, 3, 2)],
                             users=[(1, 24, "M", "x", "1"), (2, 30, "F")],
                             items=[(10, "t", "01-Jan-1995", "0" * 18 + "1")])
    with pytest.warns(SkippedInputWarning) as record:
        prepare_dataset(schema_lib.movielens_schema(), folder, tmp_path / "cache", max_skipped_fraction=0.5)
    messages = " ".join(str(warning.message) for warning in record)
    assert "u.user:2: wrong number of columns (3 columns, expected 5)" in messages
    assert "u.data:2: user absent from the user table" in messages
