"""Issue 21, item 1: warm start on new data (`--warm_start_from`), a growing vocabulary, the remap of the fused table
and its Adam moments, refusals of another model, and the lineage of runs and exports."""

import json
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed import artifacts, compat
from tf_multiembed.data import PreparedData, prepare_dataset
from tf_multiembed.data.growth import BaseVocabulary, grow_vocabulary
from tf_multiembed.training import warm_start as warm_start_lib
from tf_multiembed.training.config import RunConfig
from tf_multiembed.training.run import build_and_compile, create_strategy, run

SCHEMA = {"name": "clicks", "delimiter": ",", "has_header": True, "label": {"column": "clicked"}, "min_count": 2,
          "fields": [{"name": "user", "kind": "categorical"}, {"name": "city", "kind": "categorical"}]}
TABLE = "model/layers/multi_embedding/embeddings/.ATTRIBUTES/VARIABLE_VALUE"


def _day(path: pathlib.Path, users, cities, rows: int = 192, seed: int = 0, extra_column: bool = False) -> str:
    rng = np.random.default_rng(seed)
    lines = ["clicked,user,city" + (",device" if extra_column else "")]
    for _ in range(rows):
        user, city = rng.choice(users), rng.choice(cities)
        clicked = int(rng.random() < (0.7 if user.endswith(("1", "3")) else 0.2))
        lines.append(f"{clicked},{user},{city}" + (",phone" if extra_column else ""))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _config(tmp_path, data_path, name, schema="schema.json", **overrides) -> RunConfig:
    options = dict(dataset="custom", schema=str(tmp_path / schema), data_path=data_path, model="dnn", scale=2,
                   embedding_dim=4, batch_size=32, epochs=1, patience=5, shuffle=False, verbose=0, export_dir="",
                   data_dir=str(tmp_path / "cache"), model_dir=str(tmp_path / "runs" / name))
    options.update(overrides)
    return RunConfig(**options)


@pytest.fixture()
def days(tmp_path):
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    day1 = _day(tmp_path / "day1.csv", [f"u{i}" for i in range(8)], ["paris", "lyon", "nice"], seed=1)
    # Day 2: u0 and u1 are gone, u8..u11 are new; a new city.
    day2 = _day(tmp_path / "day2.csv", [f"u{i}" for i in range(2, 12)], ["paris", "lyon", "nice", "lille"], seed=2)
    return tmp_path, day1, day2


def _checkpoint_values(run_dir: pathlib.Path):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run_dir / "checkpoints")))
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if key.startswith(("model/", "optimizer/"))}


def test_warm_start_on_the_same_data_and_vocabulary_equals_resuming(days):
    tmp_path, day1, _ = days
    run(_config(tmp_path, day1, "a"))  # one epoch
    shutil.copytree(tmp_path / "runs" / "a", tmp_path / "runs" / "a_after_1")
    resumed, _ = run(_config(tmp_path, day1, "a", epochs=2))  # the same run, one more epoch
    warm, _ = run(_config(tmp_path, day1, "b", warm_start_from=str(tmp_path / "runs" / "a_after_1")))

    assert warm["warm_start"]["optimizer_state"] is True
    assert warm["warm_start"]["table_rows"]["fresh"] == 0
    assert warm["warm_start"]["vocabulary_growth"]["totals"]["added"] == 0
    resumed_state, warm_state = (_checkpoint_values(tmp_path / "runs" / name) for name in ("a", "b"))
    # Every weight, every Adam moment and the Adam step count after the warm-started epoch are bit-equal to the
    # resumed run's after its second epoch (only the learning rate variable and the bookkeeping are not compared:
    # a warm start is a new run, at its epoch 1).
    assert sorted(resumed_state) == sorted(warm_state)
    for key, value in resumed_state.items():
        np.testing.assert_array_equal(warm_state[key], value, err_msg=key)
    assert int(warm_state["optimizer/variables_list/0/.ATTRIBUTES/VARIABLE_VALUE"]) == 2 * 5  # 160 rows / 32
    assert [entry["epoch"] for entry in warm["epochs"]] == [1]
    assert [entry["epoch"] for entry in resumed["epochs"]] == [1, 2]


def _prepared(tmp_path, path, base=None) -> PreparedData:
    return prepare_dataset(str(tmp_path / "schema.json"), path, tmp_path / "cache", base_vocabulary=base)


def test_a_token_of_both_days_keeps_its_row_new_tokens_get_fresh_rows_and_the_oov_row_carries_over(days):
    tmp_path, day1, day2 = days
    run(_config(tmp_path, day1, "a", epochs=2))
    source = warm_start_lib.resolve_source(tmp_path / "runs" / "a")
    data = _prepared(tmp_path, day2, BaseVocabulary(source.vocab_dir, source.ages_dir))
    growth = data.vocabulary_growth["fields"]
    assert growth["user"] == {"base": 8, "kept_active": 6, "kept_inactive": 2, "evicted": 0, "added": 4,
                              "new_dropped_by_cap": 0, "tokens": 12}
    assert growth["city"]["added"] == 1

    config = _config(tmp_path, day2, "b", warm_start_from=str(source.path))
    info = create_strategy(config)
    fresh = build_and_compile(config, data.vocabulary_sizes, data.field_names, info)
    fresh_table = np.array(fresh.get_layer("multi_embedding").embeddings)
    model = build_and_compile(config, data.vocabulary_sizes, data.field_names, info)
    record = warm_start_lib.warm_start_model(model, source, data.vocab_dir, data.vocabulary_sizes)
    table = np.array(model.get_layer("multi_embedding").embeddings)
    momentum, velocity = (np.array(slot) for slot in compat.adam_slots(
        model.optimizer, model.get_layer("multi_embedding").embeddings))

    old = _checkpoint_values(source.path)
    old_table = old[TABLE]
    old_vocabulary = {token: index + 1 for index, token in enumerate((source.vocab_dir / "user.txt").read_text()
                                                                      .split())}
    new_vocabulary = {token: index + 1 for index, token in enumerate((data.vocab_dir / "user.txt").read_text()
                                                                      .split())}
    moments = [value for key, value in sorted(old.items()) if key.startswith("optimizer/variables_list/")
               and value.shape == old_table.shape]
    assert len(moments) == 2
    for token in ("u2", "u5", "u7", "u0"):  # u0 is not in day 2's data but kept (no eviction)
        np.testing.assert_array_equal(table[new_vocabulary[token]], old_table[old_vocabulary[token]])
        assert np.any(table[new_vocabulary[token]] != fresh_table[new_vocabulary[token]])
    np.testing.assert_array_equal(table[0], old_table[0])  # the user field's OOV row
    city_offset_old, city_offset_new = len(old_vocabulary) + 1, len(new_vocabulary) + 1
    np.testing.assert_array_equal(table[city_offset_new], old_table[city_offset_old])  # the city field's OOV row
    for token in ("u8", "u11"):  # new: the row the initialiser drew, zero moments
        row = new_vocabulary[token]
        np.testing.assert_array_equal(table[row], fresh_table[row])
        assert not np.any(momentum[row]) and not np.any(velocity[row])
    kept_rows = [new_vocabulary[token] for token in old_vocabulary]
    old_rows = [old_vocabulary[token] for token in old_vocabulary]
    assert {tuple(np.array_equal(momentum[kept_rows], moment[old_rows]) for moment in moments),
            tuple(np.array_equal(velocity[kept_rows], moment[old_rows]) for moment in moments)} == {(True, False),
                                                                                                   (False, True)}
    assert int(model.optimizer.iterations.numpy()) == int(old["optimizer/variables_list/0/.ATTRIBUTES/VARIABLE_VALUE"])
    assert record["table_rows"] == {"carried_over": 8 + 1 + 3 + 1, "fresh": 5, "source": 13}


def test_eviction_by_inactive_builds_and_the_cap_on_new_tokens_are_counted():
    tokens, ages, stats = grow_vocabulary(["a", "b", "c"], np.array([0, 1, 0]), {"a": 4, "d": 9, "e": 3, "f": 2},
                                          evict_after=1, max_new_tokens=2)
    # b was inactive for a second build in a row (age 2 > 1): evicted; c inactive once: kept with age 1; d and e are
    # the two most frequent new tokens; f is dropped by the cap.
    assert tokens == ["a", "c", "d", "e"]
    assert ages.tolist() == [0, 1, 0, 0]
    assert stats == {"base": 3, "kept_active": 1, "kept_inactive": 1, "evicted": 1, "added": 2,
                     "new_dropped_by_cap": 1, "tokens": 4}
    frozen, _, frozen_stats = grow_vocabulary(["a", "b"], np.zeros(2), {"z": 5}, max_new_tokens=0)
    assert frozen == ["a", "b"] and frozen_stats["new_dropped_by_cap"] == 1
    capped, _, capped_stats = grow_vocabulary(["a", "b"], np.zeros(2), {"y": 5, "z": 6}, max_tokens=3)
    assert capped == ["a", "b", "z"] and capped_stats["new_dropped_by_cap"] == 1


def test_remap_of_the_table_and_its_moments_equals_a_per_token_loop(tmp_path):
    rng = np.random.default_rng(0)
    old_tokens = [[f"a{i}" for i in range(6)], [f"b{i}" for i in range(4)]]
    new_tokens = [["a3", "a0", "x", "a5", "y"], [f"b{i}" for i in range(4)] + ["b9"]]
    # Columns a and b have vocabularies; h is a hash-bucket column of 3 buckets (4 rows), last.
    old_sizes, new_sizes = [7, 5, 4], [6, 6, 4]

    class Source:  # the part of a WarmStartSource that row_mapping reads
        field_names, vocabulary_sizes, vocab_dir = ("a", "b", "h"), tuple(old_sizes), tmp_path / "old"

        def vocabulary_columns(self):
            return ["a", "b"]

    (tmp_path / "old").mkdir()
    for name, old, new in zip("ab", old_tokens, new_tokens):
        (tmp_path / f"{name}.txt").write_text("".join(f"{token}\n" for token in new))
        (tmp_path / "old" / f"{name}.txt").write_text("".join(f"{token}\n" for token in old))
    source_rows, target_rows = warm_start_lib.row_mapping(Source(), tmp_path, new_sizes)
    for old_values in (rng.normal(size=(16, 6)), rng.random(size=(16, 6))):  # a table, a moment
        initial = rng.normal(size=(16, 6)).astype(np.float32)
        variable = tf.Variable(initial)
        warm_start_lib.remap_rows(old_values.astype(np.float32), variable, source_rows, target_rows, chunk_bytes=48)
        expected = initial.copy()
        old_offsets, new_offsets = [0, 7, 12], [0, 6, 12]
        for field in range(2):
            expected[new_offsets[field]] = old_values[old_offsets[field]]  # OOV
            for old_id, token in enumerate(old_tokens[field], start=1):
                if token in new_tokens[field]:
                    expected[new_offsets[field] + new_tokens[field].index(token) + 1] = \
                        old_values[old_offsets[field] + old_id]
        for bucket in range(4):  # hash buckets carry over unchanged
            expected[new_offsets[2] + bucket] = old_values[old_offsets[2] + bucket]
        np.testing.assert_array_equal(variable.numpy(), expected)


@pytest.mark.parametrize("change, message", [
    (dict(model="ipnn"), "another model family (dnn in the source, ipnn now)"),
    (dict(embedding_dim=5), "another embedding width (4 in the source, 5 now)"),
    (dict(scale=3), "another number of embedding sets (2 in the source, 3 now)"),
    (dict(schema="schema3.json"), "another field list (new fields ['device'])"),
])
def test_day_two_with_another_model_width_or_field_is_refused_naming_it(days, change, message):
    tmp_path, day1, _ = days
    run(_config(tmp_path, day1, "a"))
    schema3 = {**SCHEMA, "fields": SCHEMA["fields"] + [{"name": "device", "kind": "categorical"}]}
    (tmp_path / "schema3.json").write_text(json.dumps(schema3))
    day2 = _day(tmp_path / "day2x.csv", ["u1", "u2"], ["paris"], extra_column=True)
    with pytest.raises(warm_start_lib.WarmStartMismatchError) as raised:
        run(_config(tmp_path, day2, "b", warm_start_from=str(tmp_path / "runs" / "a"), **change))
    text = str(raised.value)
    assert message in text and "\n" not in text
    assert text.startswith(f"--warm_start_from={tmp_path / 'runs' / 'a'}: ")
    assert not (tmp_path / "runs" / "b" / "checkpoints").exists()


def test_lineage_in_the_run_and_export_and_a_new_version_of_the_same_served_model(days):
    tmp_path, day1, day2 = days
    export_dir = str(tmp_path / "export")
    run(_config(tmp_path, day1, "day1", export_dir=export_dir, export_name="clicks"))
    results, export_path = run(_config(tmp_path, day2, "day2", export_dir=export_dir, export_name="clicks",
                                       warm_start_from=str(tmp_path / "export" / "clicks")))
    assert export_path == tmp_path / "export" / "clicks" / "2"
    assert results["warm_start"]["kind"] == "export" and results["warm_start"]["optimizer_state"] is False
    lineage = json.loads((tmp_path / "runs" / "day2" / "run.json").read_text())["lineage"]
    assert [entry["path"] for entry in lineage] == [str(tmp_path / "runs" / "day1"), str(tmp_path / "runs" / "day2")]
    assert [entry["data"]["inputs"] for entry in lineage] == [[day1], [day2]]
    metadata = artifacts.read_export_metadata(export_path)
    assert metadata["lineage"] == results["lineage"] == lineage
    # Day 3 from day 2's run directory: three generations.
    day3 = _day(tmp_path / "day3.csv", ["u3", "u4", "u20"], ["paris"], seed=3)
    third, _ = run(_config(tmp_path, day3, "day3", warm_start_from=str(tmp_path / "runs" / "day2")))
    assert [entry["data"]["inputs"] for entry in third["lineage"]] == [[day1], [day2], [day3]]


def test_train_py_refuses_another_width_in_one_line(days):
    import os
    import subprocess
    import sys

    tmp_path, day1, day2 = days
    run(_config(tmp_path, day1, "a"))
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    environment.pop("TF_CONFIG", None)
    completed = subprocess.run(
        [sys.executable, str(pathlib.Path(__file__).resolve().parents[2] / "train.py"), "--dataset=custom",
         f"--schema={tmp_path / 'schema.json'}", f"--data_path={day2}", "--model=dnn", "--scale=2",
         "--embedding_dim=6", f"--warm_start_from={tmp_path / 'runs' / 'a'}", f"--data_dir={tmp_path / 'cache'}",
         f"--model_dir={tmp_path / 'runs' / 'b'}", "--export_dir=", "--verbose=0"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 1
    lines = [line for line in completed.stderr.splitlines() if line.startswith("train.py:")]
    assert len(lines) == 1 and "another embedding width (4 in the source, 6 now)" in lines[0], completed.stderr


def test_ages_persist_across_builds_and_evict_and_the_key_without_a_base_is_unchanged(days):
    import dataclasses
    import hashlib

    from tf_multiembed.data import build as build_lib
    from tf_multiembed.data import shards as shards_lib
    from tf_multiembed.data.growth import AGES_DIR_NAME

    tmp_path, day1, day2 = days
    first = _prepared(tmp_path, day1)
    assert first.vocabulary_growth is None and not (first.directory / AGES_DIR_NAME).exists()
    # The cache key of a build without a base vocabulary is the formula it always was.
    schema, settings = first.schema, first.settings
    fingerprints = build_lib.input_fingerprints([pathlib.Path(day1)])
    inputs = [{key: entry[key] for key in ("path", "size", "mtime_ns", "missing") if key in entry}
              for entry in fingerprints]
    payload = json.dumps({"format_version": shards_lib.FORMAT_VERSION, "schema": schema.to_dict(), "inputs": inputs,
                          "settings": dataclasses.asdict(settings)}, sort_keys=True)
    assert first.cache_key == hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def grown(path, previous):
        return _prepared(tmp_path, path, BaseVocabulary(previous.vocab_dir, previous.directory / AGES_DIR_NAME,
                                                        evict_after=1))

    second = grown(day2, first)  # u0 and u1 are not in day 2: inactive once (age 1), kept
    tokens = second_tokens = (second.vocab_dir / "user.txt").read_text().split()
    ages = dict(zip(tokens, np.load(second.directory / AGES_DIR_NAME / "user.npy").tolist()))
    assert (ages["u0"], ages["u1"], ages["u2"], ages["u9"]) == (1, 1, 0, 0)
    assert second.vocabulary_growth["fields"]["user"]["evicted"] == 0
    day3 = _day(tmp_path / "day3.csv", [f"u{i}" for i in range(1, 12)], ["paris"], seed=3)
    third = grown(day3, second)  # u0 absent a second time in a row: evicted; u1 is back: age 0
    tokens = (third.vocab_dir / "user.txt").read_text().split()
    # The base tokens keep their order without u0 (the ids after it move up by one); day 3 adds none (u10, u11 known).
    assert tokens == [token for token in second_tokens if token != "u0"]
    ages = dict(zip(tokens, np.load(third.directory / AGES_DIR_NAME / "user.npy").tolist()))
    assert ages["u1"] == 0
    assert third.vocabulary_growth["fields"]["user"]["evicted"] == 1
    assert third.cache_key != first.cache_key


def test_a_schema_with_numeric_treatments_or_bags_is_refused_before_the_build(tmp_path):
    from tf_multiembed.training.run import prepare_data

    schema = {"name": "clicks", "delimiter": ",", "has_header": True, "label": {"column": "clicked"},
              "fields": [{"name": "user"}, {"name": "price", "kind": "numeric", "treatment": "embedded"},
                         {"name": "tags", "kind": "bag", "separator": "|", "max_values": 4}]}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    (tmp_path / "clicks.csv").write_text("clicked,user,price,tags\n1,u1,2.5,a|b\n0,u2,1.0,b\n")
    config = RunConfig(dataset="custom", schema=str(tmp_path / "schema.json"), data_path=str(tmp_path / "clicks.csv"),
                       data_dir=str(tmp_path / "cache"), model="dnn", warm_start_from=str(tmp_path / "yesterday"))
    with pytest.raises(ValueError, match=r"--warm_start_from does not support numeric treatments or bag fields yet "
                                         r"\(\['price', 'tags'\]\)"):
        prepare_data(config)
    assert not (tmp_path / "cache").exists()  # refused before anything was built
