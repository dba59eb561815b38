"""Subprocess side of test_parameter_server.py (legacy tf-keras): a localhost cluster of 2 parameter servers and
1 worker started in this process, this process as the coordinator; trains the tiny model with the package's loop.

    TF_USE_LEGACY_KERAS=1 python ps_script.py OUTPUT_DIR

A parameter-server coordinator connects the process's eager context to the cluster for good, hence a subprocess.
"""

import json
import os
import pathlib
import socket
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import tensorflow as tf  # noqa: E402

import training_fixtures as tiny  # noqa: E402


def _free_port():
    with socket.socket() as handle:
        handle.bind(("localhost", 0))
        return handle.getsockname()[1]


def main(output: pathlib.Path):
    from tf_multiembed.training import PaperRecipe, compile_model, distribute, train

    jobs = {"worker": [f"localhost:{_free_port()}"], "ps": [f"localhost:{_free_port()}" for _ in range(2)],
            "chief": [f"localhost:{_free_port()}"]}
    cluster = tf.train.ClusterSpec(jobs)
    for job in ("worker", "ps"):
        for index in range(len(jobs[job])):
            tf.distribute.Server(cluster, job_name=job, task_index=index, protocol="grpc", start=True)
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(cluster, task_type="chief", task_id=0,
                                                                    rpc_layer="grpc")
    # Tiny tables: split anything over 256 bytes, so the 33 x 8 embedding table gets one shard per server.
    info = distribute.parameter_server_strategy_from_resolver(resolver, min_shard_bytes=256)
    ids, labels = tiny.click_data(1800, seed=0)
    recipe = PaperRecipe(learning_rate=0.01, patience=3, max_epochs=3)
    with info.strategy.scope():
        model = compile_model(tiny.tiny_model(0), recipe)
    table = model.get_layer("multi_embedding").embeddings
    shards = [(variable.device, variable.shape.as_list()) for variable in getattr(table, "variables", [table])]
    results = train(model, train_data=lambda epoch: tiny.batches(ids[:1200], labels[:1200], 64, shuffle_seed=epoch),
                    validation_data=tiny.batches(ids[1200:1500], labels[1200:1500], 64),
                    test_data=tiny.batches(ids[1500:], labels[1500:], 64), model_dir=str(output / "run"),
                    recipe=recipe, strategy_info=info, steps_per_epoch=19, verbose=0)
    report = {"table_type": type(table).__name__, "shards": shards, "epochs": results["epochs"],
              "test": results["test"], "best_epoch": results["best_epoch"],
              "checkpoint": tf.train.latest_checkpoint(str(output / "run" / "checkpoints"))}
    (output / "ps.json").write_text(json.dumps(report))


if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    main(out)
    os._exit(0)  # the in-process servers never stop on their own
