"""Subprocess side of the multi-worker input test: one MultiWorkerMirroredStrategy worker (TF_CONFIG) reads the
training split of a prepared-data folder through `experimental_distribute_dataset` and writes the row ids it saw.

    TF_CONFIG=... python multiworker_reader.py PREPARED_DIR OUTPUT_JSON
"""

import json
import sys

import numpy as np
import tensorflow as tf

from tf_multiembed.data import PreparedData


def main(prepared_dir: str, output: str) -> None:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    data = PreparedData.load(prepared_dir)
    dataset = data.train_dataset(batch_size=32, shuffle=False)
    distributed = strategy.experimental_distribute_dataset(dataset)
    rows = []
    for ids, _ in distributed:
        for replica_ids in strategy.experimental_local_results(ids):
            rows.extend(np.asarray(replica_ids)[:, 0].tolist())
    json.dump({"rows": rows, "cardinality": int(dataset.cardinality())}, open(output, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
