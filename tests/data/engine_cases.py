"""Input cases whose prepared outputs were recorded as golden expectations (golden/engine_goldens.json).

The goldens were recorded with the pure-Python two-pass engine (commit 3a0e9a1) before the columnar engine replaced
it: `python tests/data/golden/record_goldens.py` rewrote them then. Every case writes its own input files under a
folder and returns the `prepare_dataset` arguments; `canonical_outputs` reduces a `PreparedData` to plain data
(vocabularies, per-split ids and labels or their sha256 digests, the ingest report with paths made relative), so
the same comparison holds whatever the on-disk shard format is.
"""

import dataclasses
import hashlib
import pathlib
import re

import numpy as np

from data_test_files import SMALL_CRITEO_LINES, small_criteo_schema, write_grouplens, write_lines
from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data.schema import FieldSpec, LabelSpec, Schema

SPLITS = ("train", "validation", "test")

BAD_CRITEO_LINES = [
    "1\t5\t\taa\tx",          # 1 good
    "0\t5\taa\tx",            # 2 four columns
    "1\tfive\t3\taa\tx",      # 3 a word in an integer column
    b"0\t5\t3\t\xff\tx",      # 4 not UTF-8
    "2\t5\t3\taa\tx",         # 5 label 2
    "0\t0\t3\tbb\ty",         # 6 good
    "",                       # 7 blank
    "1\t1000\t-1\taa\ty",     # 8 good
    "x\tbad\t3\tcc\tz",       # 9 bad label and bad number: the label is reported
    "0\t2.5\t1e9\tNULL\tx",   # 10 good: floats, and the missing token written out
    "1\t 7\tinf\tcaf\u00e9\t[UNK]",  # 11 good: a padded number, infinity (missing), non-ASCII, StringLookup's OOV
    "0\t-0.5\t3\taa\tx\textra",      # 12 six columns
]


def _criteo_like_line(row: int) -> str:
    """A deterministic Criteo-layout line (label, 3 integers, 4 categories) with skewed values and empties."""
    ints = ["" if (row * 7 + j) % 11 == 0 else str(((row * (j + 3)) % 97) ** (j + 1) % 5000 - 3) for j in range(3)]
    cats = ["" if (row + j) % 13 == 0 else f"{((row * (j + 1)) ** 2) % (7 + 40 * j):x}-{j}" for j in range(4)]
    return "\t".join([str((row * 31 + 7) % 5 == 0 and 1 or (row % 3 == 0) * 1)] + ints + cats)


def _criteo_like_schema(min_count: int) -> Schema:
    return schema_lib.criteo_schema(min_count=min_count, num_numeric=3, num_categorical=4, name="criteo-like")


def case_small_criteo(folder):
    return small_criteo_schema(min_count=2), write_lines(folder / "small.tsv", SMALL_CRITEO_LINES), {}


def case_small_criteo_min_count_one_sorted(folder):
    schema = dataclasses.replace(small_criteo_schema(min_count=1), vocabulary_order="sorted")
    return schema, write_lines(folder / "small.tsv", SMALL_CRITEO_LINES), {"seed": 3}


def case_bad_criteo_lines(folder):
    return (small_criteo_schema(min_count=1), write_lines(folder / "bad.tsv", BAD_CRITEO_LINES),
            {"max_skipped_fraction": 0.7})


def case_criteo_like_files(folder):
    """3,000 lines over a gzip file, a CRLF file, a missing and an empty file; a few bad lines among them."""
    lines = [_criteo_like_line(row) for row in range(3000)]
    lines[17] = lines[17] + "\tsurplus"
    lines[1234] = "1\tnot-a-number\t1\t2\ta\tb\tc\td"
    lines[2999] = ""
    first = write_lines(folder / "part-0.tsv.gz", lines[:1500], compress=True)
    second = write_lines(folder / "part-1.tsv", lines[1500:], line_end="\r\n")
    empty = write_lines(folder / "part-2.tsv", [])
    return (_criteo_like_schema(min_count=3), [first, second, empty, folder / "part-3.tsv"],
            {"max_skipped_fraction": 0.01, "rows_per_shard": 700})


def case_criteo_like_time_split(folder):
    lines = [_criteo_like_line(row) for row in range(2000)]
    path = write_lines(folder / "day.tsv", lines)
    schema = _criteo_like_schema(min_count=2)
    schema = dataclasses.replace(schema, fields=tuple(
        dataclasses.replace(field, max_tokens=5) if field.name == "C3" else field for field in schema.fields))
    return schema, path, {"split": "time", "split_fractions": (0.7, 0.2, 0.1)}


AVAZU_HEADER = "id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,app_domain,app_category," \
               "device_id,device_ip,device_model,device_type,device_conn_type,C14,C15,C16,C17,C18,C19,C20,C21"


def case_avazu_like(folder):
    lines = [AVAZU_HEADER]
    for row in range(400):
        values = [f"{row}", str(int(row % 7 in (0, 3))), f"1410{21 + row // 100:02d}{row % 24:02d}"]
        values += [f"v{(row * (j + 2)) % (3 + j)}" for j in range(21)]
        lines.append(",".join(values))
    lines[50] = lines[50][:-3]  # a cut line: one column short
    return schema_lib.avazu_schema(min_count=2), write_lines(folder / "train.csv", lines), {
        "split": "time", "max_skipped_fraction": 0.01}


def case_quoted_csv(folder):
    schema = Schema("quoted", label=LabelSpec("clicked"), quotechar='"', time_column="ts",
                    fields=(FieldSpec("user", column="user_id", min_count=1, missing_token="NONE"),
                            FieldSpec("city", min_count=1), FieldSpec("price", kind="numeric", min_count=1)))
    lines = ["\ufeffts,clicked,user_id,city,price", '3,1,u1,"Paris, France",10', "1,0,u2,Berlin,",
             '2,1,,"Oslo",2.5', '4,0,u1,"open quote,7', "5,1,u3,Paris,99999", "0,0,u2,\"Rome\",1e3",
             "6,1,u1,Berlin,-4"]
    return schema, write_lines(folder / "quoted.csv", lines, line_end="\r\n"), {
        "split": "time", "max_skipped_fraction": 0.2}


def case_threshold_label_and_times(folder):
    schema = Schema("ratings", fields=(FieldSpec("a", min_count=1), FieldSpec("b", min_count=2)),
                    label=LabelSpec("rating", rule="threshold", threshold=4), time_column="ts", delimiter=";")
    lines = ["rating;a;b;ts"] + [f"{(i * 3) % 6};x{i % 4};y{i % 3};{(i * 37) % 50}" for i in range(50)]
    lines += ["four;x1;y1;3", "3;x1;y1;later", "5;x9;;7.5", "nan;x2;y2;8"]
    return schema, write_lines(folder / "ratings.csv", lines), {
        "split": "time", "split_fractions": (0.6, 0.2, 0.2), "max_skipped_fraction": 0.1}


def case_multi_valued_tags(folder):
    schema = Schema("tags", label=LabelSpec("y"), delimiter="|", vocabulary_order="sorted",
                    fields=(FieldSpec("user", min_count=1),
                            FieldSpec("tags", kind="multi_categorical", separator=" ", max_values=2, min_count=2,
                                      missing_token="none")))
    lines = ["y|user|tags", "1|u1|a b", "0|u2|b", "1|u1|", "0|u2|c a b", "1|u3|b  a", "0|u1|a a", "1|u2|c"]
    return schema, write_lines(folder / "tags.psv", lines), {"seed": 1}


def case_movielens_grouplens(folder):
    ratings = [(1 + (i * 7) % 5, 10 + (i * 3) % 4, 1 + (i * 5) % 5, 1000 + (i * 13) % 97) for i in range(60)]
    ratings[7] = (9, 10, 4, 5)     # unknown user
    ratings[20] = (1, 99, 4, 6)    # unknown item
    users = [(1, 24, "M", "technician", "85711"), (2, 53, "F", "other", "94043"), (3, 23, "M", "writer", "32067"),
             (4, 24, "M", "technician", "43537"), (5, 33, "F", "other", "15213")]
    items = [(10, "Toy Story (1995)", "01-Jan-1995", "0001110000000000000"),
             (11, "GoldenEye (1995)", "01-Jan-1995", "0110000000000000010"),
             (12, "Caf\u00e9 (1996)", "", "0000000010000000000"),
             (13, "Four Rooms (1995)", "01-Jan-1995", "0000000000000000010")]
    path = write_grouplens(folder / "ml", ratings, users, items)
    return schema_lib.movielens_schema(genre_slots=2), path, {"max_skipped_fraction": 0.05}


def case_movielens_recbole(folder):
    ml = folder / "ml"
    ml.mkdir()
    write_lines(ml / "ml-100k.inter", ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
                + [f"{1 + i % 3}\t{10 + (i * 7) % 3}\t{1 + (i * 3) % 5}\t{100 + (i * 11) % 31}" for i in range(30)])
    write_lines(ml / "ml-100k.user", ["user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token",
                                      "1\t24\tM\ttechnician\t85711", "2\t53\tF\tother\t94043",
                                      "3\t23\tM\twriter\t32067"])
    write_lines(ml / "ml-100k.item", ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
                                      "10\tToy Story\t1995\tAnimation Comedy", "11\tHeat\t1995\tAction Crime",
                                      "12\tUnknown\tunkonwn\tunknown"])
    return schema_lib.movielens_schema(vocabulary_order="sorted"), ml, {"split": "time"}


# The real MovieLens-100K (read where the `shared_ml100k_dir` fixture finds it): schema and settings per case.
REAL_MOVIELENS_CASES = {
    "movielens100k": (schema_lib.movielens_schema(), {}),
    "movielens100k_genre_slots_sorted_time": (schema_lib.movielens_schema(genre_slots=3, vocabulary_order="sorted"),
                                              {"split": "time"}),
}

CASES = {name[len("case_"):]: function for name, function in sorted(globals().items()) if name.startswith("case_")}


def digest(array: np.ndarray) -> str:
    """sha256 of an integer array as little-endian int32 (ids, or labels as 0/1)."""
    return hashlib.sha256(np.ascontiguousarray(array, dtype="<i4").tobytes()).hexdigest()


def file_digest(path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _relative(text, folder) -> str:
    return re.sub(re.escape(str(pathlib.Path(folder).resolve())) + r"|" + re.escape(str(folder)), "<dir>", str(text))


FULL_ROWS_LIMIT = 500  # larger builds keep digests of their ids instead of the ids themselves


def canonical_outputs(data, folder, full_vocabularies: bool = True) -> dict:
    """Plain-data outputs of a prepared build: vocabularies (or their digests), per-split ids and labels (or their
    digests beyond `FULL_ROWS_LIMIT` rows), and the ingest report with the input folder replaced by "<dir>"."""
    vocabularies = {}
    for name, path in data.vocabulary_files().items():
        vocabularies[name] = (pathlib.Path(path).read_text(encoding="utf-8").split("\n")[:-1] if full_vocabularies
                              else file_digest(path))
    full_ids = sum(data.split_rows.values()) <= FULL_ROWS_LIMIT
    splits = {}
    for split in SPLITS:
        ids, labels = data.numpy_split(split)
        splits[split] = ({"ids": ids.tolist(), "labels": labels.astype(int).tolist()} if full_ids
                         else {"rows": int(len(labels)), "ids_sha256": digest(ids), "labels_sha256": digest(labels)})
    report = data.report.to_dict()
    keys = ("files_read", "files_missing", "files_empty", "header_lines", "lines_read", "rows_valid", "rows_skipped",
            "skipped_by_reason", "first_bad_lines", "values_truncated", "rows_written")
    report = {key: report[key] for key in keys}
    for key in ("files_read", "files_missing", "files_empty", "first_bad_lines"):
        report[key] = [_relative(entry, folder) for entry in report[key]]
    return {"field_names": list(data.field_names), "vocabulary_sizes": list(data.vocabulary_sizes),
            "vocabularies": vocabularies, "splits": splits, "report": report}
