"""The synthetic Criteo-shaped generator: Zipf values, the planted click model and its Bayes AUC, and files that the
real Criteo reader ingests back into the latent values."""

import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tf_multiembed.data import prepare_dataset
from tf_multiembed.data import synthetic
from tf_multiembed.data.synthetic import SyntheticCriteo, SyntheticCriteoConfig, expected_auc

SMALL = SyntheticCriteoConfig(vocabulary_sizes=(12, 40, 3, 50, 200), num_numeric=2, num_interacting_pairs=4,
                              missing_rate=0.1)


def _brute_force_expected_auc(p):
    numerator = denominator = 0.0
    for i, j in itertools.permutations(range(len(p)), 2):
        weight = p[i] * (1 - p[j])  # i positive, j negative
        denominator += weight
        numerator += weight * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    return numerator / denominator


def test_expected_auc_by_hand_and_by_brute_force():
    assert expected_auc(np.array([0.2, 0.8])) == pytest.approx(0.64 / 0.68)
    assert expected_auc(np.array([0.5, 0.5, 0.5])) == pytest.approx(0.5)
    p = np.random.default_rng(0).choice([0.1, 0.3, 0.3, 0.6, 0.9], size=12)  # with ties
    assert expected_auc(p) == pytest.approx(_brute_force_expected_auc(p))


def test_samples_are_deterministic_and_shaped():
    generator = SyntheticCriteo(SMALL)
    first, second = generator.sample(500, seed=3), SyntheticCriteo(SMALL).sample(500, seed=3)
    np.testing.assert_array_equal(first.latent_ids, second.latent_ids)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert not np.array_equal(first.latent_ids, generator.sample(500, seed=4).latent_ids)
    assert first.latent_ids.shape == (500, 5) and first.labels.dtype == np.float32
    assert first.latent_ids.min() == 0 and (first.latent_ids.max(axis=0) < np.array(SMALL.vocabulary_sizes)).all()


def test_values_follow_zipf_and_the_missing_rate():
    latent = SyntheticCriteo(SMALL).sample(100_000, seed=1).latent_ids[:, 4]
    counts = np.bincount(latent, minlength=200)
    assert counts[0] / len(latent) == pytest.approx(0.1, abs=0.005)
    assert counts[1] / counts[2] == pytest.approx(2 ** 1.3, rel=0.05)  # Zipf(1.3): rank 1 vs rank 2
    assert counts[1] / counts[4] == pytest.approx(4 ** 1.3, rel=0.1)


def test_click_rate_and_bayes_auc_are_what_the_model_says():
    generator = SyntheticCriteo(SyntheticCriteoConfig())
    sample = generator.sample(100_000, seed=2)
    assert sample.labels.mean() == pytest.approx(0.25, abs=0.01)
    bayes = expected_auc(sample.probabilities)
    assert 0.75 < bayes < 0.9
    assert roc_auc_score(sample.labels, sample.probabilities) == pytest.approx(bayes, abs=0.01)
    weak = SyntheticCriteo(SyntheticCriteoConfig(logit_std=0.05)).sample(20_000, seed=2)
    assert expected_auc(weak.probabilities) < 0.55


def test_logit_parts_have_the_configured_spread_and_share():
    sample_ids = SyntheticCriteo(SyntheticCriteoConfig()).sample(50_000, seed=5).latent_ids
    linear, interaction = SyntheticCriteo(SyntheticCriteoConfig()).logit_parts(sample_ids)
    assert np.std(linear) == pytest.approx(1.5 * np.sqrt(0.5), rel=0.1)
    assert np.std(interaction) == pytest.approx(1.5 * np.sqrt(0.5), rel=0.1)
    only_pairs = SyntheticCriteo(SyntheticCriteoConfig(interaction_share=1.0))
    linear, interaction = only_pairs.logit_parts(sample_ids)
    assert not linear.any() and np.std(interaction) == pytest.approx(1.5, rel=0.1)
    assert expected_auc(only_pairs.probabilities(sample_ids)) > 0.7  # pairwise interactions alone carry the signal


def test_written_file_reads_back_into_the_latent_values(tmp_path):
    generator = SyntheticCriteo(SMALL)
    path = generator.write_tsv(tmp_path / "synthetic.tsv", num_rows=3000, seed=4)
    lines = path.read_text().splitlines()
    assert len(lines) == 3000 and {len(line.split("\t")) for line in lines} == {6}
    data = prepare_dataset(SMALL.schema(min_count=1), path, tmp_path / "cache", split="time",
                           split_fractions=(1, 0, 0))
    assert data.report.rows_skipped == 0
    ids, labels = data.numpy_split("train")  # file order
    latent = generator.sample(3000, seed=4 * 1_000_003).latent_ids  # write_tsv's one chunk
    np.testing.assert_array_equal(labels, generator.sample(3000, seed=4 * 1_000_003).labels)
    for field in range(5):  # the encoding is a bijection of the latent values
        pairs = set(zip(latent[:, field].tolist(), ids[:, field].tolist()))
        assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})
    assert (ids > 0).all()  # with min count 1 every value, the empty one ("NULL") included, has an id


def test_default_file_is_generated_once(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "_BAYES_AUC_ROWS", 20_000)
    made = synthetic.synthetic_criteo_file(tmp_path, num_rows=2000, config=SMALL)
    assert made.path.is_file() and made.num_rows == 2000 and 0.5 < made.bayes_auc < 1
    assert made.schema.num_fields == 5 and made.schema.fields[0].min_count == 10
    stamp = made.path.stat().st_mtime_ns
    again = synthetic.synthetic_criteo_file(tmp_path, num_rows=2000, config=SMALL)
    assert again.path == made.path and again.path.stat().st_mtime_ns == stamp and again.bayes_auc == made.bayes_auc
    assert synthetic.synthetic_criteo_file(tmp_path, num_rows=2000, seed=2, config=SMALL).path != made.path


@pytest.mark.parametrize("kwargs, message", [
    ({"vocabulary_sizes": (5, 1)}, "every field needs at least 2 latent values"),
    ({"num_numeric": 40}, r"`num_numeric` must lie in \[0, 39\]"),
    ({"missing_rate": 1.5}, r"`missing_rate` must lie in \[0.0, 1.0\]"),
    ({"target_ctr": 0.0}, "`target_ctr` must lie in"),
    ({"num_interacting_pairs": 1000}, r"`num_interacting_pairs` must lie in \[0, 741\]"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SyntheticCriteoConfig(**kwargs)


def test_order_three_interactions_are_rank_r_products_over_field_triples():
    config = SyntheticCriteoConfig(vocabulary_sizes=(12, 40, 3, 50, 200), num_numeric=2, num_interacting_pairs=3,
                                   interaction_order=3, interaction_rank=2, seed=5)
    generator = SyntheticCriteo(config)
    assert len(generator.interacting_pairs) == 3 and all(len(fields) == 3 for fields in generator.interacting_pairs)
    sample = generator.sample(64, seed=3)
    _, interaction = generator.logit_parts(sample.latent_ids)
    by_hand = np.zeros(64)
    for f, g, h in generator.interacting_pairs:  # sum_r e_f[x_f, r] e_g[x_g, r] e_h[x_h, r]
        for row in range(64):
            ids = sample.latent_ids[row]
            by_hand[row] += sum(generator._embeddings[f][ids[f], r] * generator._embeddings[g][ids[g], r]
                                * generator._embeddings[h][ids[h], r] for r in range(2))
    np.testing.assert_allclose(interaction, generator._interaction_scale * by_hand, rtol=1e-10)
    # The pairwise default keeps its serialization (file names of existing caches); order 3 is recorded.
    assert "interaction_order" not in SMALL.to_dict() and config.to_dict()["interaction_order"] == 3
    with pytest.raises(ValueError, match="interaction_order"):
        SyntheticCriteoConfig(vocabulary_sizes=(3, 3), num_numeric=0, num_interacting_pairs=0, interaction_order=3)


def test_run_config_sets_the_planted_click_model_of_train_py_data(tmp_path):
    import json

    from tf_multiembed.training.config import RunConfig
    from tf_multiembed.training.run import prepare_data

    def synthetic_meta(**settings):
        config = RunConfig(synthetic_rows=3000, data_dir=str(tmp_path), **settings)
        _, _, path = prepare_data(config)
        return path, json.loads(open(path[:-len(".tsv")] + ".json").read())

    default_path, default_meta = synthetic_meta()
    # The embedded data set is unchanged (its file, cache and Bayes AUC stay those of earlier versions).
    assert default_meta["config"] == json.loads(json.dumps(SyntheticCriteoConfig().to_dict()))
    path, meta = synthetic_meta(synthetic_interaction_order=3, synthetic_interactions=12,
                                synthetic_interaction_share=0.8)
    assert path != default_path
    assert (meta["config"]["interaction_order"], meta["config"]["num_interacting_pairs"],
            meta["config"]["interaction_share"]) == (3, 12, 0.8)
    with pytest.raises(ValueError, match="interaction_order` must be an integer in \\[2, 39\\]"):
        synthetic_meta(synthetic_interaction_order=40)
    with pytest.raises(ValueError, match="--synthetic_interaction_share must be <= 1.0"):
        RunConfig(synthetic_interaction_share=1.5)


def test_extra_inputs_leave_the_criteo_columns_and_file_names_unchanged():
    extended = SyntheticCriteoConfig(**{**SMALL.to_dict(), "extra_inputs": synthetic.ExtraInputs()})
    assert "extra_inputs" not in SMALL.to_dict() and extended.to_dict()["extra_inputs"]["bag_max_values"] == 20
    assert SyntheticCriteoConfig(**extended.to_dict()) == extended  # a stored configuration reads back
    with pytest.raises(ValueError, match="`extra_inputs` must be None or an ExtraInputs"):
        SyntheticCriteoConfig(extra_inputs="numeric_and_bag")
    plain, extra = SyntheticCriteo(SMALL).sample(2000, seed=5), SyntheticCriteo(extended).sample(2000, seed=5)
    np.testing.assert_array_equal(plain.latent_ids, extra.latent_ids)
    np.testing.assert_array_equal(plain.labels, extra.labels)
    assert plain.numeric is None and extra.numeric.shape == (2000, 6) and extra.bag.min() == -1
    lengths = (extra.bag > 0).sum(axis=1)
    assert 4.7 < lengths.mean() < 5.3 and (lengths == 0).any()  # Poisson(5): some bags are empty
    assert 0.08 < np.isnan(extra.numeric).mean() < 0.12  # SMALL's missing rate 0.1
    schema = extended.schema(min_count=1)
    assert schema.field_names[:5] == SMALL.schema().field_names and schema.bag_fields[0].max_values == 20
    assert [field.treatment for field in schema.treated_fields] == ["bucketized"] * 2 + ["embedded"] * 2 + ["dense"] * 2


def test_extra_inputs_in_memory_equal_what_the_build_makes_of_the_file(tmp_path):
    """The throughput benchmark's in-memory numeric and bag inputs (`ExtraInputs.model_arrays`) are what the real
    build and `PreparedData` give train.py for the same rows: the floats, the bucket ids and boundaries, the
    statistics, the bag's slots and the model's fields."""
    extra = synthetic.ExtraInputs(num_buckets=8, bag_vocabulary=300, bag_max_values=6)  # some bags truncated
    config = SyntheticCriteoConfig(**{**SMALL.to_dict(), "extra_inputs": extra})
    generator = SyntheticCriteo(config)
    path = generator.write_tsv(tmp_path / "synthetic.tsv", num_rows=3000, seed=4)
    data = prepare_dataset(config.schema(min_count=1), path, tmp_path / "cache", split="time",
                           split_fractions=(1, 0, 0))
    sample = generator.sample(3000, seed=4 * 1_000_003)  # write_tsv's one chunk
    arrays = extra.model_arrays(sample.numeric, sample.bag)
    features, labels = data.numpy_split("train")  # file order
    np.testing.assert_array_equal(labels, sample.labels)
    for key in ("numeric_values", "dense_values"):
        np.testing.assert_array_equal(features[key], arrays[key])  # NaN where missing, in both
    ids = features["feature_ids"]
    np.testing.assert_array_equal(ids[:, 5:7], arrays["bucket_ids"])
    assert data.bucket_boundaries == {"bucket_a": arrays["numeric"]["bucketized"][0]["boundaries"],
                                      "bucket_b": arrays["numeric"]["bucketized"][1]["boundaries"]}
    for mine, built in zip(arrays["model_inputs"]["embedded"] + arrays["model_inputs"]["dense"],
                           data.model_inputs["embedded"] + data.model_inputs["dense"]):
        assert mine == {**built, "mean": pytest.approx(built["mean"]), "std": pytest.approx(built["std"])}
    assert data.report.numeric_missing == {entry["name"]: entry["missing_rows"] for entries in
                                           arrays["numeric"].values() for entry in entries}
    # The bag: the same padded slots (-1), the values a bijection of the ranks, the truncation counted.
    bag = ids[:, 7:]
    np.testing.assert_array_equal(bag < 0, arrays["bag_ids"] < 0)
    pairs = set(zip(arrays["bag_ids"][bag >= 0].tolist(), bag[bag >= 0].tolist()))
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})
    assert data.report.values_truncated == {"tags": int(((sample.bag > 0).sum(axis=1) > 6).sum())} != {"tags": 0}
    names, sizes, bag_sizes = data.model_fields()
    assert names[-3:] == ("bucket_a", "bucket_b", "tags") and bag_sizes == (1,) * 7 + (6,)
    assert list(sizes[5:7]) == arrays["vocabulary_sizes"][:2] == [9, 9]
