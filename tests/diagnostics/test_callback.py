"""InformationAbundanceCallback: logged values equal a direct computation on the weights at that step."""

import csv
import json

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.diagnostics import abundance
from tf_multiembed.diagnostics.callback import InformationAbundanceCallback
from tf_multiembed.models import build_model

SIZES = [12, 5, 30]
NAMES = ["user", "gender", "item"]


class _WeightSnapshots(tf.keras.callbacks.Callback):
    """Copies the embedding table at the same moments the IA callback records (it runs after it)."""

    def __init__(self, every_n_steps):
        super().__init__()
        self.every_n_steps, self.step, self.tables = every_n_steps, 0, {}

    def on_train_begin(self, logs=None):
        self.tables[0] = self.model.get_layer("multi_embedding").embeddings.numpy().copy()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every_n_steps == 0:
            self.tables[self.step] = self.model.get_layer("multi_embedding").embeddings.numpy().copy()


def _data(num_examples=96, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.stack([rng.integers(0, size, num_examples) for size in SIZES], axis=1)
    labels = ((ids[:, 0] + ids[:, 2]) % 2).astype(np.float32)
    return ids, labels


def _model():
    model = build_model("dcnv2", SIZES, scale=2, field_names=NAMES, num_cross_layers=1, hidden_units=(16,))
    # A large learning rate so the embeddings visibly move between records.
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    return model


def test_logged_values_equal_direct_computation(tmp_path):
    ids, labels = _data()
    model = _model()
    callback = InformationAbundanceCallback(every_n_steps=2, log_dir=tmp_path / "tb", csv_path=tmp_path / "ia.csv",
                                            json_path=tmp_path / "ia.json")
    snapshots = _WeightSnapshots(every_n_steps=2)
    history = model.fit(ids, labels, batch_size=32, epochs=2, verbose=0, callbacks=[callback, snapshots])

    steps = [record["step"] for record in callback.history]
    assert steps == [0, 2, 4, 6]  # 3 batches per epoch, 2 epochs, plus the initial record
    assert [record["epoch"] for record in callback.history] == [0, 0, 1, 1]
    offsets = np.concatenate([[0], np.cumsum(SIZES)])
    for record in callback.history:
        table = snapshots.tables[record["step"]]
        for field, name in enumerate(NAMES):
            rows = table[offsets[field]:offsets[field + 1]]
            assert record["concat_abundance"][name] == pytest.approx(
                abundance.information_abundance(rows, "svd"), rel=1e-6)
            for set_index in range(2):
                assert record["set_abundance"][name][set_index] == pytest.approx(
                    abundance.information_abundance(rows[:, 10 * set_index:10 * (set_index + 1)], "svd"), rel=1e-6)
        values = list(record["concat_abundance"].values())
        assert record["mean_concat_abundance"] == pytest.approx(np.mean(values))
        assert record["min_concat_abundance"] == pytest.approx(np.min(values))
    # The embeddings moved, so the records differ.
    assert callback.history[0]["concat_abundance"] != callback.history[-1]["concat_abundance"]
    # The latest values reach the epoch logs.
    assert history.history["ia_mean"][-1] == pytest.approx(callback.history[-1]["mean_concat_abundance"])
    assert history.history["ia_min"][0] == pytest.approx(callback.history[1]["min_concat_abundance"])

    # JSON: the whole history; CSV: one row per field for the concatenation and one per set.
    assert json.loads((tmp_path / "ia.json").read_text()) == callback.history  # floats round-trip exactly
    with open(tmp_path / "ia.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * 3 * 3
    row = next(r for r in rows if r["step"] == "4" and r["field"] == "item" and r["set"] == "1")
    assert float(row["abundance"]) == pytest.approx(callback.history[2]["set_abundance"]["item"][1])
    assert float(row["effective_rank"]) == pytest.approx(callback.history[2]["set_effective_rank"]["item"][1])
    row = next(r for r in rows if r["step"] == "2" and r["field"] == "user" and r["set"] == "all")
    assert float(row["effective_rank"]) == pytest.approx(callback.history[1]["concat_effective_rank"]["user"])

    # TensorBoard: the scalars at their steps.
    logged = {}
    for event_file in (tmp_path / "tb").glob("events.out.tfevents.*"):
        for serialized in tf.data.TFRecordDataset(str(event_file)):
            event = tf.compat.v1.Event.FromString(serialized.numpy())
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                logged[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
    assert logged[("information_abundance/mean", 6)] == pytest.approx(callback.history[3]["mean_concat_abundance"])
    assert logged[("information_abundance/field/gender", 2)] == pytest.approx(
        callback.history[1]["concat_abundance"]["gender"])
    assert logged[("information_abundance/set_1/user", 0)] == pytest.approx(
        callback.history[0]["set_abundance"]["user"][1])
    assert logged[("effective_rank/mean", 6)] == pytest.approx(callback.history[3]["mean_concat_effective_rank"])
    assert logged[("effective_rank/set_1/user", 0)] == pytest.approx(
        callback.history[0]["set_effective_rank"]["user"][1])


def test_once_per_epoch_by_default():
    ids, labels = _data()
    callback = InformationAbundanceCallback(record_at_start=False, log_sets=False)
    _model().fit(ids, labels, batch_size=48, epochs=3, verbose=0, callbacks=[callback])
    assert [(r["step"], r["epoch"]) for r in callback.history] == [(2, 0), (4, 1), (6, 2)]


@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_bad_every_n_steps(value):
    with pytest.raises(ValueError, match="every_n_steps"):
        InformationAbundanceCallback(every_n_steps=value)


def test_model_without_embedding_layer_fails_clearly():
    inputs = tf.keras.Input((3,))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(1)(inputs), name="plain")
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="no MultiEmbedding layer"):
        model.fit(np.ones((4, 3)), np.ones(4), verbose=0, callbacks=[InformationAbundanceCallback()])
