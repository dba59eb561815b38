"""Subprocess side of test_distribute.py: trains the tiny model under a strategy and writes what the test compares.

    python distributed_script.py local OUTPUT_DIR            # one device, then MirroredStrategy over 2 CPU devices
    TF_CONFIG=... python distributed_script.py worker OUTPUT_DIR RUN_DIR   # one MultiWorkerMirroredStrategy worker

Logical CPU devices can only be configured before TensorFlow initialises, and TF_CONFIG is read once per process,
hence subprocesses.
"""

import json
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import training_fixtures as tiny  # noqa: E402

EPOCHS, BATCH = 3, 128


def _splits():
    ids, labels = tiny.click_data(1800, seed=0)
    return (ids[:1200], labels[:1200]), (ids[1200:1500], labels[1200:1500]), (ids[1500:], labels[1500:])


def train_under(info, model_dir):
    """Trains with the package's loop under `info`; returns (results, weights)."""
    from tf_multiembed.training import PaperRecipe, compile_model, train

    train_split, validation, test = _splits()
    recipe = PaperRecipe(learning_rate=0.01, patience=5, max_epochs=EPOCHS)
    with info.strategy.scope():
        model = compile_model(tiny.tiny_model(0), recipe)
    results = train(model, train_data=lambda epoch: tiny.batches(*train_split, BATCH),
                    validation_data=tiny.batches(*validation, BATCH), test_data=tiny.batches(*test, BATCH),
                    model_dir=str(model_dir), recipe=recipe, strategy_info=info, verbose=0)
    return results, [variable.numpy() for variable in model.variables], model


def _metrics(results):
    return {"val_auc": [entry["val_auc"] for entry in results["epochs"]], "test": results["test"],
            "best_epoch": results["best_epoch"], "replicas": results["runtime"]["replicas"]}


def local(output_dir: pathlib.Path):
    from tf_multiembed import compat
    from tf_multiembed.training import distribute
    from tf_multiembed.training.optimizers import CoupledL2Adam

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    report = {}
    single, _, _ = train_under(distribute.create_strategy("default"), output_dir / "single")
    report["single"] = _metrics(single)
    mirrored_info = distribute.create_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    mirrored, _, model = train_under(mirrored_info, output_dir / "mirrored")
    report["mirrored"] = _metrics(mirrored)
    strategy = mirrored_info.strategy
    # Keras 3 leaves batch-norm statistics per replica; the loop's sync makes the copies equal.
    copies = [[value.numpy() for value in strategy.experimental_local_results(variable.value
                                                                             if hasattr(variable, "value")
                                                                             and not isinstance(variable, tf.Variable)
                                                                             else variable)]
              for variable in model.non_trainable_variables if "moving" in variable.name]
    report["moving_statistics"] = len(copies)
    report["replica_copies_equal"] = all(np.array_equal(a, b) for a, b in copies)

    # Coupled L2 under 2 replicas: gradients are summed over replicas and L2 is added once, after the sum. The
    # embedding-like case: replica 0 looks up rows [1, 3], replica 1 row [3]; one device looks up [1, 3, 3].
    def one_step(strategy_, mode, sparse):
        with strategy_.scope():
            variable = tf.Variable([[1.0, -2.0], [0.5, 3.0], [2.0, 1.0], [-1.0, 0.5]])
            optimizer = CoupledL2Adam(learning_rate=0.1, l2=0.5, embedding_updates=mode)
            optimizer.build([variable])

        @tf.function
        def step():
            def replica_fn():
                replica = tf.distribute.get_replica_context().replica_id_in_sync_group
                with tf.GradientTape() as tape:
                    if not sparse:
                        loss = 0.1 * tf.reduce_sum(variable) / strategy_.num_replicas_in_sync
                    elif strategy_.num_replicas_in_sync == 1:
                        loss = tf.reduce_sum(tf.gather(variable, [1, 3, 3]) * [[0.1, 0.2]])
                    else:
                        ids = tf.cond(tf.equal(replica, 0), lambda: tf.constant([1, 3]), lambda: tf.constant([3]))
                        loss = tf.reduce_sum(tf.gather(variable, ids) * [[0.1, 0.2]])
                optimizer.apply_gradients([(tape.gradient(loss, variable), variable)])
            strategy_.run(replica_fn)

        step()
        step()
        return variable.numpy() if not hasattr(variable, "values") else variable.values[0].numpy()

    for mode in ("dense", "sparse"):
        for sparse in (False, True):
            key = f"{mode}_{'gather' if sparse else 'full'}"
            report[f"l2_single_{key}"] = one_step(tf.distribute.get_strategy(), mode, sparse).tolist()
            report[f"l2_mirrored_{key}"] = one_step(strategy, mode, sparse).tolist()

    # A model with string inputs under MirroredStrategy is refused with the upstream issue named.
    with strategy.scope():
        text = tf.keras.Input(shape=(1,), dtype="string", name="city")
        string_model = tf.keras.Model(text, tf.keras.layers.Dense(1)(tf.keras.layers.StringLookup(
            vocabulary=["a", "b"], output_mode="one_hot")(text)))
    try:
        compat.check_no_string_inputs(string_model, strategy)
        report["string_input_error"] = None
    except ValueError as error:
        report["string_input_error"] = str(error)
    (output_dir / "local.json").write_text(json.dumps(report))


def worker(output_dir: pathlib.Path, run_dir: pathlib.Path):
    from tf_multiembed.training import distribute

    info = distribute.create_strategy("multi_worker")
    results, weights, _ = train_under(info, run_dir)
    np.savez(output_dir / f"{info.task_id}.npz", *weights)
    report = _metrics(results)
    report["is_chief"] = info.is_chief
    (output_dir / f"{info.task_id}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    mode, output = sys.argv[1], pathlib.Path(sys.argv[2])
    output.mkdir(parents=True, exist_ok=True)
    if mode == "local":
        local(output)
    else:
        worker(output, pathlib.Path(sys.argv[3]))
    os._exit(0)  # collective-ops threads can keep a multi-worker process alive after main returns
