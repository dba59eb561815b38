"""The Beam/tf.Transform build on the local runner: the same vocabulary files and the same ids per row as the
single-machine build (fixtures with every vocabulary rule, with every numeric treatment and a bag: the same numeric
statistics, boundaries and float bits, and the real MovieLens-100K), its split rule, bad input
counted by reason (Beam metrics and report) and strict mode; and the whole road: Beam prepare (command line) ->
one epoch of training -> export -> a raw row served through `serving_default`."""

import dataclasses
import json
import os
import pathlib
import importlib.util
import subprocess
import sys
import warnings

import numpy as np
import pytest

beam = pytest.importorskip("apache_beam", reason="the [beam] extra is not installed (pip install -e '.[beam]')")
# Only looked up, not imported: see compat.import_tensorflow_transform.
if importlib.util.find_spec("tensorflow_transform") is None:
    pytest.skip("the [beam] extra is not installed (pip install -e '.[beam]')", allow_module_level=True)

from apache_beam.metrics.metric import MetricsFilter  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from data_test_files import write_lines  # noqa: E402
from engine_cases import CASES  # noqa: E402
from tf_multiembed.data import FieldSpec, LabelSpec, PreparedData, Schema, prepare_dataset  # noqa: E402
from tf_multiembed.data import splits as splits_lib  # noqa: E402
from tf_multiembed.data import shards as shards_lib  # noqa: E402
from tf_multiembed.data.beam import BeamSettings, PrepareData, prepare_with_beam  # noqa: E402
from tf_multiembed.data.beam import pipeline as beam_pipeline  # noqa: E402
from tf_multiembed.data.beam import split as split_lib  # noqa: E402
from tf_multiembed.data.quality import BadInputTracker, SkippedInputWarning  # noqa: E402
from tf_multiembed.data.records import BlockParser, make_reader  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

# Every vocabulary rule: min_count, and a tie at the max_tokens cut (u0..u3 all seen 3 times: ascending order keeps
# u0, u1, u2; tf.Transform's own order would keep u3, u2, u1), missing tokens for categorical, numeric and
# multi-valued fields, truncated multi-valued cells, tokens with a space, a non-ASCII letter, a carriage return
# inside, the reserved "[UNK]"; a hash-bucket field (no vocabulary); and bad lines of three reasons.
RULES_SCHEMA = Schema(
    name="beam-rules",
    fields=(FieldSpec("user", min_count=2, max_tokens=3),
            FieldSpec("city", missing_token="NONE"),
            FieldSpec("age", kind="numeric", missing_token="NULL"),
            FieldSpec("tags", kind="multi_categorical", separator="|", max_values=2, missing_token="none"),
            FieldSpec("user_bucket", column="user", hash_buckets=7)),
    label=LabelSpec("clicked"), delimiter=",", has_header=True)
FIRST_FILE = ["clicked,user,city,age,tags",
              "1,u0,paris,5,a|b", "0,u1,lyon,,a", "1,u2,,1000,b|c|a", "0,u3,nice,3,", "1,u0,paris,-1,c",
              "0,u1,a\rb,7,a|b", "2,u9,paris,5,a",  # bad label
              "1,u2,é x,12,b", "0,u3,[UNK],1e400,a", "1,u9,lyon,abc,b",  # non-numeric age
              "0,u4,paris,5,b|a"]
SECOND_FILE = ["clicked,user,city,age,tags",
               "1,u1,nice,2,a", "0,u2,paris,2,a|c", "1,u3,lyon,40,", "0,u0,paris,2,b",
               "1,u5,lyon", "0,u6,nice,9,c|a|b"]  # wrong column count, then a truncated cell


def _runner_options():
    return PipelineOptions([], runner="DirectRunner", direct_num_workers=1, direct_running_mode="in_memory")


@dataclasses.dataclass
class BeamOutput:
    """A Beam-written folder read at the format level (`shards.py`): manifest, vocabulary files, shards' rows."""

    folder: pathlib.Path
    manifest: dict

    @classmethod
    def load(cls, folder):
        return cls(pathlib.Path(folder), shards_lib.load_manifest(folder))

    def vocabulary_bytes(self, name: str) -> bytes:
        return (self.folder / shards_lib.VOCAB_DIR_NAME / f"{name}.txt").read_bytes()

    def shard_rows(self, split: str):
        """[(shard file, int32 rows [n, N + F + 1]: ids, float bits, label)] of a split, in manifest order."""
        num_fields = shards_lib.record_columns(self.manifest)
        result = []
        for shard in self.manifest["splits"][split]["shards"]:
            blocks = [np.concatenate([ids, labels[:, None]], axis=1) for ids, labels in
                      (shards_lib.parse_block(payload, num_fields)
                       for payload in shards_lib.read_tfrecord(self.folder / shard["file"]))]
            result.append((shard["file"], np.concatenate(blocks) if blocks else np.zeros((0, num_fields + 1), "<i4")))
        return result


def _single_machine_file_order(schema, inputs, data, seed):
    """The single-machine build's valid rows (ids, then label) in file order with their (file base name, line):
    its seeded permutation split undone."""
    tracker = BadInputTracker()
    parser = BlockParser(schema, tracker)
    places = []
    for block in make_reader(schema, inputs).read_blocks(tracker):
        rows = parser.validate(block)
        places.extend((os.path.basename(rows.path), int(line)) for line in rows.line_numbers)
    records = BeamOutput.load(data.directory)  # the raw int32 records: ids, float bits, label
    permuted = np.concatenate([rows for name in splits_lib.SPLIT_NAMES for _, rows in records.shard_rows(name)])
    rows = np.empty_like(permuted)
    rows[splits_lib.random_order(len(permuted), seed)] = permuted
    assert len(places) == len(rows)
    return places, rows.astype(np.int32)


def _assert_same_as_single_machine(schema, inputs, beam_output, single_data, seed, rows_per_shard):
    """Vocabulary files byte-identical; the same numeric section (statistics and boundaries, bit for bit) and float
    columns; every Beam shard holds exactly the single-machine records (ids, float bits, label) that the hash split
    assigns to it, in file order; the same ingest report."""
    manifest = beam_output.manifest
    assert tuple(manifest["field_names"]) == single_data.field_names
    assert tuple(manifest["vocabulary_sizes"]) == single_data.vocabulary_sizes
    assert manifest.get("numeric") == shards_lib.load_manifest(single_data.directory).get("numeric")
    assert tuple(manifest.get("float_columns", ())) == single_data.float_columns
    vocab_dir = beam_output.folder / shards_lib.VOCAB_DIR_NAME
    # (no vocab/ folder where no field has a vocabulary: the Beam build writes files, not folders)
    assert sorted(path.name for path in vocab_dir.glob("*")) == sorted(
        path.name for path in single_data.vocabulary_files().values())
    for name, path in single_data.vocabulary_files().items():
        assert beam_output.vocabulary_bytes(name) == path.read_bytes(), name
    places, rows = _single_machine_file_order(schema, inputs, single_data, seed)
    fractions = manifest["settings"]["split_fractions"]
    num_shards = split_lib.shards_per_split(len(rows), fractions, rows_per_shard)
    files = np.array([name for name, _ in places], dtype=object)
    lines = np.array([line for _, line in places], dtype=np.int64)
    split_of = np.empty(len(rows), np.uint8)
    for file_name in set(files):
        mine = files == file_name
        split_of[mine] = split_lib.split_of_rows(seed, fractions, file_name, lines[mine])
    for split_index, split_name in enumerate(splits_lib.SPLIT_NAMES):
        in_split = np.flatnonzero(split_of == split_index)
        shards = beam_output.shard_rows(split_name)
        if not len(in_split):
            assert shards == []
            continue
        assert [file for file, _ in shards] == [shards_lib.shard_file_name(split_name, index, num_shards[split_name])
                                                for index in range(num_shards[split_name])]
        shard_of = np.empty(len(in_split), np.int64)
        for file_name in set(files[in_split]):
            mine = files[in_split] == file_name
            shard_of[mine] = split_lib.shard_of_rows(seed, file_name, lines[in_split][mine], num_shards[split_name])
        for index, (file, shard_rows) in enumerate(shards):
            np.testing.assert_array_equal(shard_rows, rows[in_split[shard_of == index]], err_msg=file)
    report, expected = manifest["report"], single_data.report.to_dict()
    for key in ("files_read", "files_missing", "files_empty", "header_lines", "lines_read", "rows_valid",
                "rows_skipped", "skipped_by_reason", "first_bad_lines", "values_truncated", "numeric_missing"):
        assert report.get(key) == expected.get(key), key
    assert sum(report["rows_written"].values()) == len(rows)


def case_rules(folder):
    """The vocabulary-rules fixture above, over a plain and a gzip file."""
    return RULES_SCHEMA, [write_lines(folder / "first.csv", FIRST_FILE),
                          write_lines(folder / "second.csv.gz", SECOND_FILE, compress=True)], {
        "seed": 3, "max_skipped_fraction": 0.5, "rows_per_shard": 4}


# Every numeric treatment and a bag (docs/inputs.md): bucketized with given and with learned boundaries, embedded
# standard and log1p_standard, dense, a bag with a shared vocabulary, empty and truncated bags; missing values in
# every numeric column; a non-numeric, an infinite and a NaN value (bad rows). Two files, so that the statistics merge
# blocks of two files (the engine in file order, Beam in whatever order its combiner sees them).
INPUTS_SCHEMA = Schema(
    name="beam-inputs",
    fields=(FieldSpec("user", min_count=2),
            FieldSpec("age", kind="numeric", treatment="bucketized", boundaries=(25.0, 40.0)),
            FieldSpec("visits", kind="numeric", treatment="bucketized", num_buckets=4),
            FieldSpec("price", kind="numeric", treatment="embedded", normalization="log1p_standard"),
            FieldSpec("score", kind="numeric", treatment="embedded"),
            FieldSpec("dwell", kind="numeric", treatment="dense"),
            FieldSpec("tags", kind="bag", separator="|", max_values=3, min_count=2, max_tokens=4)),
    label=LabelSpec("clicked"), delimiter=",", has_header=True)
INPUTS_HEADER = "clicked,user,age,visits,price,score,dwell,tags"
INPUTS_BAD_LINES = ["1,u1,30,abc,1,1,1,a", "0,u2,30,2,inf,1,1,b", "1,u3,30,2,1,nan,1,c"]  # one per reason below


def _inputs_lines(num_rows, seed):
    rng = np.random.default_rng(seed)

    def cell(text):
        return "" if rng.random() < 0.15 else text

    lines = []
    for _ in range(num_rows):
        tags = "|".join(rng.choice(list("abcde"), size=int(rng.integers(0, 5))).tolist())  # 4 values: truncated
        lines.append(",".join([str(int(rng.random() < 0.4)), f"u{int(rng.integers(0, 6))}",
                               cell(str(int(rng.integers(15, 70)))), cell(str(int(rng.integers(0, 30)))),
                               cell(f"{rng.lognormal(2, 1):.2f}"), cell(repr(float(rng.normal(3, 2)))),
                               cell(repr(float(rng.exponential(40)))), tags]))
    return lines


def case_numeric_and_bags(folder):
    """The numeric-treatments-and-bag fixture above, over a plain and a gzip file."""
    first = _inputs_lines(40, 0)
    first[5:5] = INPUTS_BAD_LINES
    return INPUTS_SCHEMA, [write_lines(folder / "inputs.csv", [INPUTS_HEADER] + first),
                           write_lines(folder / "more.csv.gz", [INPUTS_HEADER] + _inputs_lines(30, 1),
                                       compress=True)], {
        "seed": 2, "max_skipped_fraction": 0.5, "rows_per_shard": 20}


# The golden cases that reach a distinct reader path or input problem (the others repeat them for the Beam side:
# sorted order is in multi_valued_tags, the RecBole layout in the real MovieLens-100K test below, threshold labels
# are parsed by the same BlockParser), and the rules fixture.
BEAM_CASES = {**{name: CASES[name] for name in ("bad_criteo_lines", "criteo_like_files", "avazu_like", "quoted_csv",
                                                 "multi_valued_tags", "movielens_grouplens")},
              "rules": case_rules, "numeric_and_bags": case_numeric_and_bags}


@pytest.fixture(scope="module")
def fixture_builds(tmp_path_factory):
    """Every input case of the engine goldens (engine_cases.py: each reader and layout, bad lines, missing and empty
    files) and the rules fixture, built by Beam (one pipeline per case: the local runner slows down sharply on one
    pipeline holding many builds) and by the single-machine build. Beam has one split rule (split.py), so time-split
    cases are compared under the random split: their vocabularies and ids per row do not depend on the split."""
    root = tmp_path_factory.mktemp("beam-cases")
    outputs = {}
    for name, case in BEAM_CASES.items():
        folder = root / name
        folder.mkdir()
        schema, paths, kwargs = case(folder)
        kwargs = {key: value for key, value in kwargs.items() if key != "split"}
        settings = BeamSettings(seed=kwargs.get("seed", 0),
                                split_fractions=kwargs.get("split_fractions", splits_lib.DEFAULT_FRACTIONS),
                                max_skipped_fraction=kwargs.get("max_skipped_fraction", 0.01),
                                rows_per_shard=kwargs.get("rows_per_shard", 4), rows_per_record=3)
        pipeline = beam.Pipeline(options=_runner_options())
        _ = pipeline | "Prepare" >> PrepareData(schema, paths, str(folder / "beam"), settings)
        result = pipeline.run()
        result.wait_until_finish()
        counters = {counter.key.metric.name: counter.committed for counter in result.metrics().query(
            MetricsFilter().with_namespace(beam_pipeline.METRICS_NAMESPACE))["counters"]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkippedInputWarning)
            single = prepare_dataset(schema, paths, folder / "cache", **kwargs)
        outputs[name] = (schema, paths, settings, BeamOutput.load(folder / "beam"), single, counters)
    return outputs


@pytest.mark.parametrize("name", sorted(BEAM_CASES))
def test_vocabularies_ids_and_report_equal_the_single_machine_build(fixture_builds, name):
    schema, paths, settings, beam_output, single, _ = fixture_builds[name]
    _assert_same_as_single_machine(schema, paths, beam_output, single, settings.seed, settings.rows_per_shard)
    assert beam_output.manifest["created_by"]["engine"] == "beam"


def test_rules_fixture_keeps_the_single_machine_tie_order_and_tokens(fixture_builds):
    _, _, _, beam_output, _, _ = fixture_builds["rules"]
    tokens = {name: beam_output.vocabulary_bytes(name).decode("utf-8").split("\n")[:-1]
              for name in RULES_SCHEMA.field_names if name != "user_bucket"}
    assert tokens["user"] == ["u0", "u1", "u2"]  # u0..u3: 3 each, cut at 3 by ascending token; u4: 1
    assert "NONE" in tokens["city"] and "a\rb" in tokens["city"] and "é x" in tokens["city"]
    assert "[UNK]" not in tokens["city"] and "NULL" in tokens["age"]
    assert tokens["tags_0"] == tokens["tags_1"] and "none" in tokens["tags_0"]
    settings = beam_output.manifest["settings"]
    assert settings["seed"] == 3 and settings["split_rule"] == split_lib.RULE
    assert beam_output.manifest["vocabulary_sizes"][-1] == 8 and not (
        beam_output.folder / shards_lib.VOCAB_DIR_NAME / "user_bucket.txt").exists()
    ids = np.concatenate([rows for split in splits_lib.SPLIT_NAMES for _, rows in beam_output.shard_rows(split)])
    assert set(ids[:, -2].tolist()) <= set(range(1, 8)) and len(set(ids[:, -2].tolist())) > 2


def test_bad_input_is_counted_by_reason_in_the_report_and_as_beam_metrics(fixture_builds):
    _, _, _, beam_output, _, counters = fixture_builds["rules"]
    report = beam_output.manifest["report"]
    assert report["skipped_by_reason"] == {"bad_label": 1, "non_numeric": 1, "wrong_column_count": 1}
    assert report["first_bad_lines"][0].endswith("first.csv:8: bad label (label '2', expected 0 or 1)")
    assert report["values_truncated"] == {"tags": 2}
    assert sum(report["rows_written"].values()) == 14
    assert counters == {"lines_read": 17, "rows_valid": 14, "skipped_bad_label": 1, "skipped_non_numeric": 1,
                        "skipped_wrong_column_count": 1}
    files_report = fixture_builds["criteo_like_files"][3].manifest["report"]
    assert files_report["files_missing"][0].endswith("part-3.tsv")
    assert files_report["files_empty"][0].endswith("part-2.tsv")


def test_two_worker_processes_write_the_same_files(fixture_builds, tmp_path):
    """Elements pickled between two worker processes, bundles in another order: byte-identical vocabularies and
    shards (rows are placed by hash and sorted by (file, line) within each shard)."""
    schema, paths, settings, beam_output, _, _ = fixture_builds["rules"]
    options = PipelineOptions([], runner="DirectRunner", direct_num_workers=2, direct_running_mode="multi_processing")
    folder = pathlib.Path(prepare_with_beam(schema, paths, tmp_path / "two", settings, options))
    for part in (shards_lib.VOCAB_DIR_NAME, shards_lib.SHARD_DIR_NAME):
        files = sorted(path.name for path in (beam_output.folder / part).iterdir())
        assert files and files == sorted(path.name for path in (folder / part).iterdir())
        for name in files:
            assert (folder / part / name).read_bytes() == (beam_output.folder / part / name).read_bytes(), name


def test_strict_mode_fails_the_pipeline_at_a_bad_line(tmp_path):
    _, rules_inputs, _ = case_rules(tmp_path)
    with pytest.raises(Exception, match=r"first\.csv:8: bad label .*Strict mode"):
        prepare_with_beam(RULES_SCHEMA, str(rules_inputs[0]), tmp_path / "out", BeamSettings(strict=True))
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_too_many_bad_lines_fail_before_any_shard_is_written(tmp_path):
    _, rules_inputs, _ = case_rules(tmp_path)
    with pytest.raises(Exception, match=r"3 of 17 lines \(17\.65%\) were bad, more than the allowed 1\.00%"):
        prepare_with_beam(RULES_SCHEMA, [str(path) for path in rules_inputs], tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists() and not (tmp_path / "out" / "shards").exists()


def test_output_folder_rules(fixture_builds, tmp_path):
    _, rules_inputs, _, beam_output, _, _ = fixture_builds["rules"]
    with pytest.raises(FileExistsError, match="already holds prepared data"):
        prepare_with_beam(RULES_SCHEMA, str(rules_inputs[0]), beam_output.folder)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"holds \['notes.txt'\], which a prepared-data folder does not"):
        prepare_with_beam(RULES_SCHEMA, str(rules_inputs[0]), tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").exists()


def test_split_rule_is_seeded_and_near_the_fractions():
    lines = np.arange(1, 100_001)
    splits = split_lib.split_of_rows(0, (0.8, 0.1, 0.1), "day_0.gz", lines)
    counts = np.bincount(splits, minlength=3)
    assert abs(counts[0] - 80_000) < 600 and abs(counts[1] - 10_000) < 450 and abs(counts[2] - 10_000) < 450
    np.testing.assert_array_equal(splits, split_lib.split_of_rows(0, (0.8, 0.1, 0.1), "day_0.gz", lines))
    assert (splits != split_lib.split_of_rows(1, (0.8, 0.1, 0.1), "day_0.gz", lines)).mean() > 0.3
    assert (splits != split_lib.split_of_rows(0, (0.8, 0.1, 0.1), "day_1.gz", lines)).mean() > 0.3
    assert set(split_lib.split_of_rows(0, (1.0, 0.0, 0.0), "f", lines).tolist()) == {0}
    shards = split_lib.shard_of_rows(0, "day_0.gz", lines, 7)
    assert shards.min() == 0 and shards.max() == 6 and np.bincount(shards).min() > 13_500
    assert split_lib.shards_per_split(100, (0.8, 0.2, 0.0), 30) == {"train": 3, "validation": 1, "test": 0}


def test_real_movielens_100k_equals_the_single_machine_build(shared_ml100k_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ml-beam")
    settings = BeamSettings(rows_per_shard=30_000)
    beam_output = BeamOutput.load(prepare_with_beam("movielens", shared_ml100k_dir, folder / "beam", settings))
    single = prepare_dataset("movielens", shared_ml100k_dir, folder / "cache")
    assert beam_output.manifest["vocabulary_sizes"] == [944, 1683, 62, 3, 22, 796, 74, 217]
    _assert_same_as_single_machine(single.schema, shared_ml100k_dir, beam_output, single, seed=0,
                                   rows_per_shard=30_000)
    report = beam_output.manifest["report"]
    assert report["lines_read"] == 100_000 and report["rows_skipped"] == 0
    assert {name: len(split["shards"]) for name, split in beam_output.manifest["splits"].items()} == {
        "train": 3, "validation": 1, "test": 1}


CLICKS_SCHEMA = {"name": "clicks", "delimiter": ",", "has_header": True, "label": {"column": "clicked"},
                 "fields": [{"name": "user", "kind": "categorical", "min_count": 2},
                            {"name": "city", "kind": "categorical"},
                            {"name": "age", "kind": "numeric"},
                            {"name": "tags", "kind": "multi_categorical", "separator": "|", "max_values": 2},
                            # The same columns again as the new kinds: a float (embedded) and a bag.
                            {"name": "age_value", "column": "age", "kind": "numeric", "treatment": "embedded"},
                            {"name": "tag_bag", "column": "tags", "kind": "bag", "separator": "|", "max_values": 2}]}


def _write_clicks(path, num_rows=1200, seed=0):
    rng = np.random.default_rng(seed)
    cities, tags = ["paris", "lyon", "nice", "lille", ""], ["sport", "news", "music", "tech"]
    lines = ["clicked,user,city,age,tags"]
    for _ in range(num_rows):
        city = cities[rng.integers(0, len(cities))]
        age = "" if rng.random() < 0.1 else str(int(rng.integers(1, 90)))
        chosen = rng.choice(tags, size=rng.integers(0, 3), replace=False)
        score = 1.5 * (city == "paris") + 1.5 * ("sport" in chosen) - 1.0 + (age != "" and int(age) > 50) * 1.0
        lines.append(f"{int(rng.random() < 1 / (1 + np.exp(-score)))},u{int(rng.zipf(1.5)) % 100},{city},{age},"
                     f"{'|'.join(chosen)}")
    return write_lines(path, lines)


def test_beam_road_prepare_train_export_serve(tmp_path):
    """A user's road: the Beam command line on the local runner -> `train.py --dataset=prepared` for one epoch ->
    its SavedModel -> raw rows served, equal to the run's best model on the same encoded rows; categorical, numeric
    transform and slot fields beside an embedded numeric field and a bag."""
    import tensorflow as tf

    import tf_multiembed
    from tf_multiembed.data.encoding import raw_features_from_cells
    from tf_multiembed.serving import OUTPUT_NAME

    csv = _write_clicks(tmp_path / "clicks.csv")
    (tmp_path / "schema.json").write_text(json.dumps(CLICKS_SCHEMA))
    output = tmp_path / "prepared"
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    completed = subprocess.run(
        [sys.executable, "-m", "tf_multiembed.data.beam", f"--schema={tmp_path / 'schema.json'}", f"--input={csv}",
         f"--output_dir={output}", "--seed=1", "--rows_per_shard=400"],
        env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert f"Prepared data: {output}" in completed.stdout

    data = PreparedData.load(output)
    assert sum(data.split_rows.values()) == 1200 and data.report.rows_skipped == 0
    assert len(data.shards["train"]) == 3
    trained = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train.py"), "--dataset=prepared", f"--data_path={output}", "--model=dnn",
         "--scale=2", "--epochs=1", "--batch_size=128", "--verbose=0", f"--model_dir={tmp_path / 'run'}",
         f"--export_dir={tmp_path / 'export'}", "--export_name=clicks"],
        env=environment, capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [entry["epoch"] for entry in results["epochs"]] == [1]
    assert 0.55 < results["test"]["auc"] <= 1.0

    export_path = sorted((tmp_path / "export" / "clicks").iterdir())[-1]
    signature = tf.saved_model.load(str(export_path)).signatures["serving_default"]
    raw = {"user": ["u1", "never-seen"], "city": ["paris", ""], "age": ["70", ""], "tags": ["sport|news", ""],
           "age_value": ["70", ""], "tag_bag": ["sport|news", ""]}
    features = raw_features_from_cells(data.schema, raw)
    served = signature(**{name: tf.constant(values) for name, values in features.items()})[OUTPUT_NAME].numpy()
    encoded = {key: value.numpy() for key, value in data.feature_encoder()(features).items()}
    ids = encoded["feature_ids"]
    assert ids[1].tolist() == [0, 0, 0, 0, 0, -1, -1] and ids[0].min() > 0  # an empty bag is padding, not OOV
    assert encoded["numeric_values"][0, 0] == 70.0 and np.isnan(encoded["numeric_values"][1, 0])
    assert data.model_fields()[2] == (1, 1, 1, 1, 1, 2) and data.model_inputs["embedded"][0]["name"] == "age_value"
    best = tf_multiembed.load_model(tmp_path / "run" / "best.keras")  # registers the package's layers first
    np.testing.assert_allclose(served.reshape(-1), best.predict(encoded, verbose=0).reshape(-1), rtol=1e-5,
                               atol=1e-6)


def test_importing_tensorflow_transform_leaves_the_keras_runtime_variable_alone():
    """tf.Transform sets TF_USE_LEGACY_KERAS=1 on import (so every later child process would run legacy tf-keras);
    `compat.import_tensorflow_transform` undoes it. Checked in fresh processes, with the variable unset."""
    environment = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    probe = "import os, sys; {}; print(os.environ.get('TF_USE_LEGACY_KERAS'))"
    plain = subprocess.run([sys.executable, "-c", probe.format("import tensorflow_transform")], env=environment,
                           capture_output=True, text=True, timeout=300)
    guarded = subprocess.run([sys.executable, "-c", probe.format(
        "from tf_multiembed.compat import import_tensorflow_transform as f; f()")], env=environment,
        capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0 and guarded.returncode == 0, plain.stderr[-2000:] + guarded.stderr[-2000:]
    # The upstream side effect this guards against (if it disappears, the work-around can go).
    assert plain.stdout.strip().splitlines()[-1] == "1"
    assert guarded.stdout.strip().splitlines()[-1] == "None"


def _valid_inputs_columns(paths):
    """{column: the valid rows' cells} of the numeric-and-bags fixture, read with Python's csv module (the bad lines
    are the three known ones)."""
    import csv
    import gzip

    rows = []
    for path in paths:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            rows += [row for row in list(csv.reader(handle))[1:] if ",".join(row) not in INPUTS_BAD_LINES]
    return dict(zip(INPUTS_HEADER.split(","), zip(*rows)))


def _exact_mean_and_std(values):
    """The mean and population standard deviation computed in rational numbers, each rounded once."""
    from fractions import Fraction

    exact = [Fraction(value) for value in values]
    mean = sum(exact) / len(exact)
    return float(mean), float(np.sqrt(float(sum((value - mean) ** 2 for value in exact) / len(exact))))


def test_numeric_treatments_and_bags_equal_the_single_machine_build(fixture_builds):
    """Beyond the shared checks (the same vocabularies, numeric section, float columns, records per row and report):
    the statistics and boundaries are the exact ones computed here by hand from the file, and `PreparedData.load` of
    the Beam folder gives the model the same inputs and fields as the single-machine build."""
    schema, paths, _, beam_output, single, _ = fixture_builds["numeric_and_bags"]
    columns = _valid_inputs_columns(paths)
    numeric = beam_output.manifest["numeric"]
    assert [entry["name"] for entry in numeric["bucketized"]] == ["age", "visits"]
    assert numeric["bucketized"][0]["boundaries"] == [25.0, 40.0]
    visits = np.array([float(cell) for cell in columns["visits"] if cell])
    assert numeric["bucketized"][1]["boundaries"] == np.unique(np.quantile(visits, [0.25, 0.5, 0.75])).tolist()
    for entry in numeric["embedded"] + numeric["dense"]:
        values = [float(cell) for cell in columns[entry["name"]] if cell]
        if entry["log1p"]:
            values = np.log1p(np.maximum(values, 0.0)).tolist()
        assert (entry["mean"], entry["std"]) == _exact_mean_and_std(values), entry["name"]
    missing = {name: sum(cell == "" for cell in columns[name]) for name in ("age", "visits", "price", "score", "dwell")}
    report = beam_output.manifest["report"]
    assert report["numeric_missing"] == missing and min(missing.values()) > 0
    assert report["skipped_by_reason"] == {"non_finite": 2, "non_numeric": 1}
    assert report["values_truncated"] == {"tags": sum(len(cell.split("|")) > 3 for cell in columns["tags"])} != {
        "tags": 0}
    assert beam_output.manifest["float_columns"] == ["price", "score", "dwell"]

    loaded = PreparedData.load(beam_output.folder)
    assert loaded.model_fields() == single.model_fields() == (
        ("user", "age", "visits", "tags"), single.vocabulary_sizes[:3] + (single.vocabulary_sizes[3],), (1, 1, 1, 3))
    assert loaded.model_inputs == single.model_inputs and [entry["name"] for entry in loaded.model_inputs[
        "embedded"]] == ["price", "score"]
    records = np.concatenate([rows for split in splits_lib.SPLIT_NAMES for _, rows in beam_output.shard_rows(split)])
    bags = records[:, 3:6]
    assert (bags == -1).all(axis=1).any() and (bags[:, 0] >= 0).any()  # an empty bag: all padding; others not
    assert beam_output.vocabulary_bytes("tags_0") == beam_output.vocabulary_bytes("tags_2")
    assert len(beam_output.vocabulary_bytes("tags_0").split(b"\n")) == 5  # a..e, cut to max_tokens 4
    features, labels = loaded.numpy_split("train")  # the model's input dict, float columns decoded
    assert features["feature_ids"].shape == (len(labels), 6) and features["numeric_values"].shape == (len(labels), 2)
    assert np.isnan(features["dense_values"][:, 0]).any() and np.isfinite(features["dense_values"][:, 0]).any()


def test_learned_boundaries_agree_beyond_the_sample_size(tmp_path, monkeypatch):
    """With more values than the quantile sample holds (the sample cut to 8 values here), both builds draw the same
    keyed sample (a hash of seed, field, file base name and line: no dependence on the order of reading or of
    merging), so their boundaries still agree bit for bit, and so do the ids of every row."""
    from tf_multiembed.data import numeric as numeric_lib

    monkeypatch.setattr(numeric_lib, "SAMPLE_SIZE", 8)
    schema = Schema(name="beam-sample", label=LabelSpec("clicked"), delimiter=",", has_header=True,
                    fields=(FieldSpec("visits", kind="numeric", treatment="bucketized", num_buckets=4),
                            FieldSpec("score", kind="numeric", treatment="embedded")))
    _, paths, kwargs = case_numeric_and_bags(tmp_path)
    settings = BeamSettings(seed=kwargs["seed"], max_skipped_fraction=0.5, rows_per_shard=20, rows_per_record=3)
    beam_output = BeamOutput.load(prepare_with_beam(schema, paths, tmp_path / "beam", settings, _runner_options()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedInputWarning)
        single = prepare_dataset(schema, paths, tmp_path / "cache", **kwargs)
    _assert_same_as_single_machine(schema, paths, beam_output, single, settings.seed, settings.rows_per_shard)
    visits = np.array([float(cell) for cell in _valid_inputs_columns(paths)["visits"] if cell])
    assert len(visits) > 8
    boundaries = beam_output.manifest["numeric"]["bucketized"][0]["boundaries"]
    assert boundaries != np.unique(np.quantile(visits, [0.25, 0.5, 0.75])).tolist()  # a sample, not all values
