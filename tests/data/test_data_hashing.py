"""Hash-bucket fields: no vocabulary, ids `1 + to_hash_bucket_fast(token, B)` offline, and the same ids in the serving
graph for strings, numbers, multi-valued cells and missing values (with and without a missing token)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from data_test_files import write_lines
from tf_multiembed.data import prepare_dataset, raw_features_from_cells
from tf_multiembed.data.schema import FieldSpec, LabelSpec, Schema
from tf_multiembed.data.shards import hash_bucket_ids

SCHEMA = Schema("hashed", label=LabelSpec("y"), min_count=2, fields=(
    FieldSpec("user", hash_buckets=1000),                                      # a string, hashed
    FieldSpec("device", hash_buckets=50, missing_token="NONE"),                # missing -> the bucket of "NONE"
    FieldSpec("price", kind="numeric", hash_buckets=100),                      # the bucket token ("47"), hashed
    FieldSpec("tags", kind="multi_categorical", separator="|", max_values=2, hash_buckets=20),
    FieldSpec("city"),                                                         # a vocabulary field beside them
))
LINES = ["y,user,device,price,tags,city", "1,u1,ios,1000,a|b,paris", "0,u2,,3,,paris", "1,,android,,c,lyon",
         "0,u1,ios,2.5,b|a|c,lyon", "1,caf\u00e9,NONE,1e9,a,paris"]


@pytest.fixture
def hashed(tmp_path):
    path = write_lines(tmp_path / "h.csv", LINES)
    return prepare_dataset(SCHEMA, path, tmp_path / "cache", split="time", split_fractions=(1, 0, 0))


def _cells():
    rows = [line.split(",") for line in LINES[1:]]
    header = LINES[0].split(",")
    return {name: [row[header.index(name)] for row in rows] for name in ("user", "device", "price", "tags", "city")}


def test_offline_ids_are_the_documented_hash(hashed):
    ids, _ = hashed.numpy_split("train")  # file order
    user, device, price, tag0, tag1 = (ids[:, column] for column in range(5))
    expected_user = hash_bucket_ids(["u1", "u2"], 1000)
    assert user.tolist() == [expected_user[0], expected_user[1], 0, expected_user[0],
                             hash_bucket_ids(["caf\u00e9"], 1000)[0]]
    assert expected_user[0] == 1 + tf.strings.to_hash_bucket_fast("u1", 1000).numpy()
    none, ios = hash_bucket_ids(["NONE", "ios"], 50)
    assert device[1] == none and device[4] == none and device[0] == ios  # a missing value is "NONE", as is "NONE"
    assert price.tolist()[:2] == hash_bucket_ids(["47", "1"], 100).tolist() and price[2] == 0
    assert (tag0[1], tag1[1]) == (0, 0) and tag1[2] == 0 and tag0[3] == hash_bucket_ids(["b"], 20)[0]
    assert hashed.vocabulary_sizes == (1001, 51, 101, 21, 21, 3)
    assert hashed.hash_buckets == {"user": 1000, "device": 50, "price": 100, "tags_0": 20, "tags_1": 20}
    assert list(hashed.vocabulary_files()) == ["city"]
    assert sorted(path.name for path in hashed.vocab_dir.iterdir()) == ["city.txt"]
    manifest = json.loads((hashed.directory / "manifest.json").read_text())
    assert manifest["min_counts"] == {"user": None, "device": None, "price": None, "tags": None, "city": 2}


def test_serving_graph_gives_the_offline_ids(hashed, tmp_path):
    offline, _ = hashed.numpy_split("train")
    encoder = hashed.feature_encoder()
    features = raw_features_from_cells(hashed.schema, _cells())
    np.testing.assert_array_equal(encoder(features).numpy(), offline)
    assert encoder.vocabulary_sizes == hashed.vocabulary_sizes
    export = tmp_path / "encoder"
    tf.saved_model.save(encoder, str(export), signatures={"serving_default": encoder.serve})
    loaded = tf.saved_model.load(str(export))
    served = loaded.serve({name: tf.constant(values) for name, values in features.items()})
    np.testing.assert_array_equal(served.numpy(), offline)
    # Missing numbers as NaN, and values never seen offline: still their hash bucket (hashing has no OOV).
    more = encoder({"user": ["never-seen"], "device": [""], "price": [float("nan")], "tags": ["z"],
                    "city": ["oslo"]}).numpy()[0]
    assert more.tolist() == [hash_bucket_ids(["never-seen"], 1000)[0], hash_bucket_ids(["NONE"], 50)[0], 0,
                             hash_bucket_ids(["z"], 20)[0], 0, 0]


@pytest.mark.parametrize("entry, message", [
    ({"name": "a", "hash_buckets": 0}, r"`hash_buckets` must be None or an integer in \[1, 2\*\*31 - 2\], got 0"),
    ({"name": "a", "hash_buckets": 10, "min_count": 2}, r"has no vocabulary, so `min_count` and `max_tokens`"),
    ({"name": "a", "hash_buckets": 10, "max_tokens": 2}, r"has no vocabulary, so `min_count` and `max_tokens`"),
])
def test_hash_bucket_settings_are_checked(entry, message):
    with pytest.raises(ValueError, match=message):
        Schema.from_dict({"name": "x", "label": {"column": "y"}, "fields": [entry]})
