"""Where the time of one training step goes: the TensorFlow profiler over a few `model.fit` steps, ops summed.

    python benchmarks/speed/profile_step.py --model=dcnv2 --embedding=me --scale=10 --embedding_updates=sparse \
        --threads=2
    python benchmarks/speed/profile_step.py ... --group=scope      # by the layer (name scope) instead of the op type

Trains the variant of `benchmarks.common.time_training` (Criteo cardinalities, Zipf(1.3) ids in memory, batch 2048, the
paper's recipe) for warm-up steps, then profiles `--steps` steps and prints, per op type (or per layer), the summed
wall time of its kernels per step (from start to end of each kernel, its intra-op shards included) with its share of
the sum, and the step's wall time. Kernels that the inter-op threads run side by side make the sum exceed the wall
time. `--json` writes the table.

The profile is read from the `.xplane.pb` file that `tf.profiler.experimental` writes (the XSpace protocol buffer
of TensorFlow's profiler, also what TensorBoard's profile plugin reads).
"""

import collections
import glob
import json
import os
import pathlib
import re
import sys
import tempfile
import time

if __package__ in (None, ""):  # run by path (python benchmarks/<group>/<script>.py): make `benchmarks` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from benchmarks.common import criteo_vocabulary_sizes, zipf_ids  # noqa: E402
from tf_multiembed.training import config as run_config  # noqa: E402

FLAGS = flags.FLAGS
# train.py's flags (names, defaults and help of RunConfig): the profiled model and its training step.
run_config.define_flags(["model", "embedding", "scale", "embedding_updates", "batch_size", "threads",
                        "mixed_precision"])
flags.adopt_module_key_flags(run_config)
flags.DEFINE_integer("steps", 5, "Profiled steps.")
flags.DEFINE_integer("warmup_steps", 5, "Steps before the profile (tracing, first allocations).")
flags.DEFINE_enum("group", "type", ["type", "scope", "name"], "Sum ops by type, by layer (first two name scopes) or "
                  "by full name.")
flags.DEFINE_string("op_type", "", "Only kernels of this op type (e.g. _MklTranspose), grouped by --group.")
flags.DEFINE_integer("top", 25, "Rows printed.")
flags.DEFINE_string("json", "", "Write the rows to this JSON file.")


def _scope(names) -> str:
    """The layer of an op: forward `<model>/<layer>`, backward `gradient_tape/<layer>`, optimizer `<optimizer>/<op>`,
    without the numbered suffixes TensorFlow gives repeated names (`add_22` -> `add`)."""
    names = list(names)
    if names[0] == "gradient_tape" and len(names) > 2:
        names = [names[0], names[2]]
    return "/".join(re.sub(r"_\d+$", "", name) for name in names[:2])


def op_times(logdir: str, group: str, op_type: str = "") -> collections.Counter:
    """Summed kernel wall time (seconds) per group over the executor threads of the profile in `logdir`.

    A kernel's event spans from its start to its end on the executor thread that ran it, including the time its
    intra-op shards took on other threads; tf.data, function-call wrappers and executor bookkeeping are left out.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # the profiler's file format (no public reader in TF)

    space = xplane_pb2.XSpace()
    path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
    space.ParseFromString(pathlib.Path(path).read_bytes())
    totals = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or "::" in name:  # executor and thread-pool regions, not kernels
                    continue
                op_name, kind = name.rsplit(":", 1)
                if kind.startswith("__inference") or kind.endswith("PartitionedCall"):
                    continue  # the step function itself, whose ops are counted one by one
                if op_type and kind != op_type:
                    continue
                scopes = [part for part in op_name.split("/") if not part.endswith("PartitionedCall")]
                key = {"type": kind, "name": "/".join(scopes), "scope": _scope(scopes)}[group]
                totals[key] += event.duration_ps * 1e-12
    return totals


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    from tf_multiembed.models import build_model
    from tf_multiembed.training import PaperRecipe, compile_model
    from tf_multiembed.training.run import configure_threads

    configure_threads(FLAGS.threads)
    tf.keras.mixed_precision.set_global_policy(FLAGS.mixed_precision or "float32")
    sizes = criteo_vocabulary_sizes()
    rng = np.random.default_rng(0)
    rows = FLAGS.batch_size * 8
    ids = zipf_ids(sizes, rows, rng)
    labels = (rng.random(rows) < 0.25).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((ids, labels)).batch(FLAGS.batch_size).cache().repeat()
    tf.keras.utils.set_random_seed(0)
    model = build_model(FLAGS.model, sizes, scale=FLAGS.scale, multi_embedding=FLAGS.embedding == "me")
    compile_model(model, PaperRecipe(embedding_updates=FLAGS.embedding_updates))
    model.fit(dataset, steps_per_epoch=FLAGS.warmup_steps, epochs=1, verbose=0)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        started = time.perf_counter()
        model.fit(dataset, steps_per_epoch=FLAGS.steps, epochs=1, verbose=0)
        wall = (time.perf_counter() - started) / FLAGS.steps
        tf.profiler.experimental.stop()
        totals = op_times(logdir, FLAGS.group, FLAGS.op_type)
    summed = sum(totals.values()) / FLAGS.steps or float("nan")
    print(f"{model.name} {FLAGS.embedding_updates}: wall {1000 * wall:.0f} ms per step (profiler on), kernels' summed "
          f"time {1000 * summed:.0f} ms per step ({FLAGS.threads} threads)")
    rows = [{"group": key, "ms_per_step": 1000 * seconds / FLAGS.steps, "share": seconds / FLAGS.steps / summed}
            for key, seconds in totals.most_common()]
    for row in rows[:FLAGS.top]:
        print(f"{row['ms_per_step']:9.1f} ms  {100 * row['share']:5.1f}%  {row['group']}")
    if FLAGS.json:
        pathlib.Path(FLAGS.json).write_text(json.dumps({"model": model.name, "mode": FLAGS.embedding_updates,
                                                        "wall_ms_per_step": 1000 * wall,
                                                        "summed_ms_per_step": 1000 * summed, "rows": rows},
                                                       indent=1))


if __name__ == "__main__":
    app.run(main)
