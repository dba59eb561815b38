"""Finding the parts of a model that the artifacts and the diagnostics read: its `MultiEmbedding` layer, its
field-pair layer, and the object-graph paths of its variables (what checkpoints and exports see). Below both
`artifacts.py` and `diagnostics/` (it imports only `layers`), so neither reaches up.

A layer holds field-pair weights the diagnostics analyse when its class declares `PAIRWISE_KIND` (the layers'
own property, not a layer name):

- `CROSS` (`SetCross`, and so `RegularizedSetCross`): DCNv2's cross kernel; the layer provides `num_layers` and
  `effective_kernel(layer_index)` `[M, N*K, N*K]`;
- `FFM` (`SetFieldAwareInteraction`): the field-pair sub-embeddings are sets of the embedding table itself.

A new interaction block with such weights sets `PAIRWISE_KIND` to one of these (see docs/architecture.md).

Example:
    >>> from tf_multiembed.models import build_model
    >>> model = build_model("dcnv2", [5, 6, 7], scale=2)
    >>> find_embedding_layer(model).name, pairwise_kind(model)
    ('multi_embedding', 'cross')
    >>> pairwise_kind(build_model("dnn", [5, 6, 7]))  # no field-pair weights: None
"""

from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional, Tuple

if TYPE_CHECKING:  # TensorFlow only names types here: reading a run's files stays light
    import tensorflow as tf

EMBEDDING_LAYER_NAME = "multi_embedding"
NUMERIC_EMBEDDING_LAYER_NAME = "numeric_embedding"
CROSS = "cross"
FFM = "ffm"
PAIRWISE_KINDS = (CROSS, FFM)


def walk_layers(model: "tf.keras.layers.Layer") -> Iterator[Any]:
    """Every layer of `model`, nested models' layers included, in order."""
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from walk_layers(layer)


def find_embedding_layer(model: "tf.keras.Model", layer_name: Optional[str] = None) -> "tf.keras.layers.Layer":
    """The `MultiEmbedding` layer of `model`: the one named `layer_name` (default "multi_embedding"), else the only
    layer of that type (searched in nested models too).

    Raises:
        ValueError: if no such layer exists, or several exist and none is named "multi_embedding".
    """
    from tf_multiembed.layers import MultiEmbedding

    if layer_name is not None:
        try:
            return model.get_layer(layer_name)
        except ValueError:
            raise ValueError(
                f"The model {model.name!r} has no layer named {layer_name!r}; its layers are "
                f"{[layer.name for layer in model.layers]}."
            ) from None
    candidates = [layer for layer in walk_layers(model) if isinstance(layer, MultiEmbedding)]
    named = [layer for layer in candidates if layer.name == EMBEDDING_LAYER_NAME]
    if named:
        return named[0]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ValueError(
            f"The model {model.name!r} has no MultiEmbedding layer, so its embeddings cannot be analysed; models of "
            "the zoo name theirs 'multi_embedding'."
        )
    raise ValueError(
        f"The model {model.name!r} has {len(candidates)} MultiEmbedding layers ({[c.name for c in candidates]}); "
        "pass `layer_name` to choose one."
    )


def find_numeric_embedding_layer(model: "tf.keras.Model") -> Optional["tf.keras.layers.Layer"]:
    """The `NumericEmbedding` layer of `model` (embedded numeric fields, docs/inputs.md): the only one, else the one
    named "numeric_embedding" (the zoo's name); None when there is none (or several, none of them so named)."""
    from tf_multiembed.layers.numeric import NumericEmbedding

    candidates = [layer for layer in walk_layers(model) if isinstance(layer, NumericEmbedding)]
    if len(candidates) == 1:
        return candidates[0]
    return next((layer for layer in candidates if layer.name == NUMERIC_EMBEDDING_LAYER_NAME), None)


def find_pairwise_layer(model: "tf.keras.Model") -> Tuple[Optional[str], Any]:
    """`(kind, layer)` of the one layer of `model` whose class declares `PAIRWISE_KIND` (`CROSS` or `FFM`), or
    `(None, None)` when there is none, or more than one (which one the diagnostics should read is then unclear)."""
    found = [layer for layer in walk_layers(model) if getattr(type(layer), "PAIRWISE_KIND", None) is not None]
    if len(found) != 1:
        return None, None
    kind = type(found[0]).PAIRWISE_KIND
    if kind not in PAIRWISE_KINDS:
        raise ValueError(f"{type(found[0]).__name__}.PAIRWISE_KIND must be one of {list(PAIRWISE_KINDS)}, "
                         f"received {kind!r}.")
    return kind, found[0]


def object_graph_paths(root: Any) -> Dict[int, str]:
    """`{id(object): "attribute/path"}` of everything reachable from `root` in TensorFlow's object graph: the
    first, shortest path to each object, as a checkpoint names it. Checkpoints and exports identify variables by
    these paths, never by variable names or list positions.

    Example:
        >>> import tensorflow as tf
        >>> module = tf.Module()
        >>> module.weights = tf.Variable(1.0)
        >>> list(object_graph_paths(module).values())
        ['weights']
    """
    import collections

    import tensorflow as tf

    paths: Dict[int, str] = {}
    queue = collections.deque([(root, "")])
    while queue:
        parent, parent_path = queue.popleft()
        # A variable sharded over parameter servers is one object of the graph; its parts are saved with it.
        if type(parent).__name__ == "ShardedVariable":
            for index, part in enumerate(parent.variables):
                paths.setdefault(id(part), f"{parent_path}/part_{index}")
        for name, child in tf.train.TrackableView.children(parent).items():
            if id(child) in paths or child is root:
                continue
            paths[id(child)] = f"{parent_path}/{name}" if parent_path else name
            queue.append((child, paths[id(child)]))
    return paths


def pairwise_kind(model: "tf.keras.Model") -> Optional[str]:
    """`CROSS`, `FFM`, or None: what `find_pairwise_layer` finds."""
    return find_pairwise_layer(model)[0]
