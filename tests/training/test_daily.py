"""Issue 21, item 2: the day-by-day road (train on day d, test on day d+1 before training on it)."""

import json

import numpy as np

from tf_multiembed.training.config import RunConfig
from tf_multiembed.training.daily import daily_road, mean_next_day

SCHEMA = {"name": "clicks", "delimiter": ",", "has_header": True, "label": {"column": "clicked"}, "min_count": 1,
          "fields": [{"name": "user", "kind": "categorical"}, {"name": "city", "kind": "categorical"}]}


def _day(path, users, seed):
    rng = np.random.default_rng(seed)
    lines = ["clicked,user,city"] + [f"{int(rng.random() < 0.3)},{rng.choice(users)},{rng.choice(['a', 'b'])}"
                                     for _ in range(160)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_each_day_is_tested_with_the_model_of_the_day_before_and_its_vocabulary(tmp_path):
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    days = [_day(tmp_path / "d1.csv", [f"u{i}" for i in range(6)], 1),
            _day(tmp_path / "d2.csv", [f"u{i}" for i in range(3, 10)], 2)]
    config = RunConfig(dataset="custom", schema=str(tmp_path / "schema.json"), data_path=days[0], model="dnn",
                       scale=2, embedding_dim=4, batch_size=32, epochs=1, verbose=0, export_dir="",
                       data_dir=str(tmp_path / "cache"))
    rows = daily_road(config, days, tmp_path / "daily", modes=("warm", "frozen"), log=lambda line: None)
    by_key = {(row["mode"], row["day"]): row for row in rows}
    assert set(by_key) == {(mode, day) for mode in ("warm", "frozen") for day in (1, 2)}
    assert all("next_day" not in by_key[(mode, 1)] for mode in ("warm", "frozen"))
    # Day 2 is tested on all its 160 rows by day 1's model (the same in both modes: day 1 starts from scratch).
    tests = [by_key[(mode, 2)]["next_day"] for mode in ("warm", "frozen")]
    assert tests[0]["rows"] == 160 and tests[0] == tests[1]
    assert set(tests[0]) >= {"auc", "logloss", "ece", "calibration_ratio"}
    # Vocabulary (user + city rows, each with its OOV row): day 1 has u0..u5; warm adds u6..u9, frozen adds none.
    assert by_key[("warm", 1)]["vocabulary"] == 7 + 3
    assert (by_key[("warm", 2)]["vocabulary"], by_key[("warm", 2)]["added"]) == (11 + 3, 4)
    assert (by_key[("frozen", 2)]["vocabulary"], by_key[("frozen", 2)]["added"]) == (7 + 3, 0)
    run_json = json.loads((tmp_path / "daily" / "warm" / "day2" / "run.json").read_text())
    assert run_json["config"]["warm_start_from"] == str(tmp_path / "daily" / "warm" / "day1")
    assert set(mean_next_day(rows)) == {"warm", "frozen"}
