"""A small CSV click data set (categorical, numeric and multi-valued fields), a model trained on it briefly, and its
TF Serving export: shared by the serving tests."""

import dataclasses
import json
import pathlib
from typing import Dict

import numpy as np
import tensorflow as tf

FIELDS = [
    {"name": "user", "kind": "categorical", "min_count": 2},
    {"name": "city", "kind": "categorical"},
    {"name": "age", "kind": "numeric"},
    {"name": "tags", "kind": "multi_categorical", "separator": "|", "max_values": 2},
]
SCHEMA = {"name": "clicks", "delimiter": ",", "has_header": True, "label": {"column": "clicked"}, "fields": FIELDS}
NUM_ROWS = 800


def write_clicks_csv(path: pathlib.Path, seed: int = 0) -> pathlib.Path:
    rng = np.random.default_rng(seed)
    cities = ["paris", "lyon", "nice", "lille", ""]  # "" = missing
    tags = ["sport", "news", "music", "tech"]
    lines = ["clicked,user,city,age,tags"]
    for _ in range(NUM_ROWS):
        user = f"u{int(rng.zipf(1.5)) % 200}"
        city = cities[rng.integers(0, len(cities))]
        age = "" if rng.random() < 0.1 else str(int(rng.integers(1, 90)))
        chosen = rng.choice(tags, size=rng.integers(0, 3), replace=False)
        score = (city == "paris") * 1.0 + ("sport" in chosen) - 0.5 + (age != "" and int(age) > 50) * 0.7
        clicked = int(rng.random() < 1 / (1 + np.exp(-score)))
        lines.append(f"{clicked},{user},{city},{age},{'|'.join(chosen)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclasses.dataclass
class ServingSetup:
    csv: pathlib.Path
    schema: object
    data: object
    model: tf.keras.Model
    export_path: pathlib.Path

    def encoded_rows(self, count: int) -> np.ndarray:
        """Ids of the first `count` file rows (the time split keeps file order in `train`)."""
        return self.data.numpy_split("train")[0][:count]

    def model_predictions(self, ids) -> np.ndarray:
        return self.model.predict(np.asarray(ids, np.int64), batch_size=256, verbose=0)[:, 0]


def build_serving_setup(directory: pathlib.Path) -> ServingSetup:
    from tf_multiembed.data import Schema, prepare_dataset
    from tf_multiembed.models import build_model
    from tf_multiembed.serving import export_for_serving
    from tf_multiembed.serving.examples import raw_columns_from_files

    csv = write_clicks_csv(directory / "clicks.csv")
    (directory / "schema.json").write_text(json.dumps(SCHEMA))
    schema = Schema.from_file(directory / "schema.json")
    data = prepare_dataset(schema, csv, directory / "cache", split="time")
    tf.keras.utils.set_random_seed(0)
    model = build_model("dnn", list(data.vocabulary_sizes), scale=2, embedding_dim=4, hidden_units=(8, 8),
                        field_names=list(data.field_names))
    model.compile("adam", "binary_crossentropy")
    model.fit(data.train_dataset(64, seed=0), epochs=2, verbose=0)
    export_path = export_for_serving(model, data.feature_encoder(), directory / "export", "clicks",
                                     warmup_columns=raw_columns_from_files(schema, csv, 8))
    return ServingSetup(csv, schema, data, model, export_path)


def raw_rows(columns: Dict[str, list]):
    names = list(columns)
    return [{name: columns[name][index] for name in names} for index in range(len(columns[names[0]]))]
