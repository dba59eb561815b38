"""Choosing a `tf.distribute` strategy by name, and what the training loop needs to know about it.

| name               | strategy                                    | runtime                  | predicts validation    |
|--------------------|---------------------------------------------|--------------------------|------------------------|
| `default`          | the default strategy (one device)           | both                     | `model.predict`        |
| `one_device`       | `OneDeviceStrategy` (first GPU, else CPU)   | both                     | `model.predict`        |
| `mirrored`         | `MirroredStrategy` (all local GPUs)         | both                     | `model.predict`        |
| `multi_worker`     | `MultiWorkerMirroredStrategy` (`TF_CONFIG`) | both (Keras 3: `compat`) | each worker, in order  |
| `tpu`              | `TPUStrategy` (`tpu` address or `local`)    | both                     | `model.predict`        |
| `parameter_server` | `ParameterServerStrategy` (`TF_CONFIG`)     | legacy tf-keras          | the coordinator        |

The exact AUC always comes from predictions of the whole validation split ranked on the host
(`callbacks.ExactValidation`); where `model.predict` would split the data over workers, each process predicts the
split itself, in order.
"""

import dataclasses
import json
import os
from typing import Any, Dict, Optional, Sequence, Tuple

import tensorflow as tf

from tf_multiembed import compat

STRATEGY_NAMES = ("default", "one_device", "mirrored", "multi_worker", "tpu", "parameter_server")


@dataclasses.dataclass
class StrategyInfo:
    """A strategy and the facts the training loop needs about the current process.

    Attributes:
        name: one of `STRATEGY_NAMES`.
        strategy: the `tf.distribute.Strategy`.
        is_chief: this process writes the checkpoints the run resumes from, TensorBoard logs, results and exports.
        task_id: a name for this process in a multi-process run ("worker_1"), used for its scratch directory.
        cluster_resolver: the cluster resolver of a multi-process strategy, else None.
    """

    name: str
    strategy: tf.distribute.Strategy
    is_chief: bool = True
    task_id: str = "chief"
    cluster_resolver: Optional[tf.distribute.cluster_resolver.ClusterResolver] = None

    @property
    def is_parameter_server(self) -> bool:
        return self.name == "parameter_server"

    @property
    def predicts_on_host(self) -> bool:
        """Predict evaluation splits batch by batch in this process (`model.predict` would shard them over
        workers, or cannot run on a parameter-server coordinator)."""
        return self.name in ("multi_worker", "parameter_server")


def _tf_config() -> Dict[str, Any]:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}); received {raw[:200]!r}.") from None


def _multi_worker_role(config: Dict[str, Any]) -> Tuple[bool, str]:
    """(is_chief, task_id) of this process in a MultiWorkerMirroredStrategy cluster."""
    task = config.get("task", {})
    task_type, index = task.get("type", "worker"), int(task.get("index", 0))
    has_chief = "chief" in config.get("cluster", {})
    is_chief = task_type == "chief" or (not has_chief and task_type == "worker" and index == 0)
    return is_chief, f"{task_type}_{index}"


def create_strategy(name: str = "default", *, devices: Optional[Sequence[str]] = None, tpu: str = "",
                    num_parameter_server_shards: Optional[int] = None,
                    min_shard_bytes: int = 256 << 10) -> StrategyInfo:
    """Creates the strategy `name` (see the module table).

    Args:
        name: one of `STRATEGY_NAMES`.
        devices: `mirrored` only: the devices to mirror over (default: all GPUs, else the CPU).
        tpu: `tpu` only: the TPU address or name for `TPUClusterResolver` ("" or "local" for a TPU VM).
        num_parameter_server_shards: `parameter_server` only: the most shards a variable is split into (default:
            the number of parameter servers). Variables of at least `min_shard_bytes` per shard are partitioned
            along their first axis, so a big embedding table is spread over the parameter servers.
        min_shard_bytes: `parameter_server` only: the smallest shard worth creating.

    Returns:
        A `StrategyInfo`.

    Example:
        >>> info = create_strategy("default")
        >>> info.is_chief, info.predicts_on_host
        (True, False)
    """
    if name not in STRATEGY_NAMES:
        raise ValueError(f"Unknown strategy {name!r}; expected one of {STRATEGY_NAMES}.")
    if name == "default":
        return StrategyInfo(name, tf.distribute.get_strategy())
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return StrategyInfo(name, tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0"))
    if name == "mirrored":
        return StrategyInfo(name, tf.distribute.MirroredStrategy(devices=list(devices) if devices else None))
    if name == "multi_worker":
        config = _tf_config()
        if not config.get("cluster"):
            raise ValueError(
                "strategy 'multi_worker' needs TF_CONFIG with a 'cluster' of workers and this process's 'task', "
                'e.g. {"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}.'
            )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        if compat.needs_multi_worker_fixes(strategy):
            compat.apply_keras_multi_worker_fixes()
        is_chief, task_id = _multi_worker_role(config)
        return StrategyInfo(name, strategy, is_chief, task_id, cluster_resolver=strategy.cluster_resolver)
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "local")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return StrategyInfo(name, tf.distribute.TPUStrategy(resolver),
                            cluster_resolver=resolver)
    return _parameter_server_strategy(num_parameter_server_shards, min_shard_bytes)


def _parameter_server_strategy(num_shards: Optional[int], min_shard_bytes: int) -> StrategyInfo:
    if not compat.is_legacy_keras():
        raise RuntimeError(
            "strategy 'parameter_server' trains with model.fit only under legacy tf-keras: install tf-keras and set "
            "TF_USE_LEGACY_KERAS=1 before TensorFlow is imported (Keras 3 has no ParameterServerStrategy support)."
        )
    config = _tf_config()
    cluster = config.get("cluster", {})
    if not cluster.get("ps") or not cluster.get("worker"):
        raise ValueError(
            "strategy 'parameter_server' needs TF_CONFIG with 'chief', 'worker' and 'ps' jobs, e.g. "
            '{"cluster": {"chief": ["h0:2222"], "worker": ["h1:2222"], "ps": ["h2:2222", "h3:2222"]}, '
            '"task": {"type": "chief", "index": 0}}.'
        )
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return parameter_server_strategy_from_resolver(resolver, num_shards, min_shard_bytes)


def parameter_server_strategy_from_resolver(resolver: tf.distribute.cluster_resolver.ClusterResolver,
                                            num_shards: Optional[int] = None,
                                            min_shard_bytes: int = 256 << 10) -> StrategyInfo:
    """A `ParameterServerStrategy` for the coordinator (chief) of `resolver`'s cluster, tables partitioned.

    Example:
        >>> info = parameter_server_strategy_from_resolver(resolver)  # doctest: +SKIP
    """
    num_ps = len(resolver.cluster_spec().as_dict().get("ps", []))
    partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=min_shard_bytes, max_shards=num_shards or num_ps)
    strategy = tf.distribute.experimental.ParameterServerStrategy(resolver, variable_partitioner=partitioner)
    return StrategyInfo("parameter_server", strategy, cluster_resolver=resolver)


def parameter_server_role() -> Optional[str]:
    """"worker" or "ps" when TF_CONFIG makes this process a parameter-server cluster's server, else None.

    Such a process only serves: `run_server()` blocks forever; the chief coordinates the training.
    """
    task_type = _tf_config().get("task", {}).get("type")
    cluster = _tf_config().get("cluster", {})
    if "ps" in cluster and task_type in ("worker", "ps"):
        return task_type
    return None


def run_server() -> None:
    """Starts this process's `tf.distribute.Server` from TF_CONFIG and serves until killed."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type, task_index=resolver.task_id,
                                  protocol=resolver.rpc_layer or "grpc", start=True)
    server.join()


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Blocks until every worker of a multi-worker strategy reaches this point (a one-scalar all-reduce).

    Workers restore checkpoints that the chief writes; without a barrier a fast worker could read the chief's
    previous checkpoint while the chief is still writing the new one. A no-op for single-worker strategies.

    Example:
        >>> barrier(tf.distribute.get_strategy())
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return

    @tf.function
    def all_workers() -> tf.Tensor:
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)

    all_workers().numpy()
