"""The paper's toy experiment (Fig. 4): interacting with a low-rank field collapses an embedding.

Three fields with D1 = D2 = 100 and D3 in {3, 100}; every pair (x1, x2) occurs once, x3 ~ U{0..D3-1}, labels
y ~ U{0, 1}. The model is FM-style, h = <e1, e2> + <e1, e3> + <e2, e3>, trained with a logistic loss by full-batch
SGD (lr 1) with E2 and E3 frozen at their N(0, 1) initialisation. Only E1 learns. Its gradient is a combination of
the rows of E2 and E3; when D3 = 3 the E3 part lives in a 3-dimensional subspace, so E1 drifts towards it and its
information abundance drops below that of the D3 = 100 run. The paper does not state K; 10 is used here.

Both runs share E1, E2 and the labels (drawn before anything that depends on D3), so they differ only in field 3.
The gradient is computed in closed form with NumPy (no framework needed): a 5,000-iteration run takes a few seconds.
"""

import dataclasses
from typing import Any, Dict, Sequence

import numpy as np

from tf_multiembed.diagnostics import abundance


@dataclasses.dataclass
class ToyCollapseResult:
    """IA(E1) over training for each cardinality of field 3.

    Attributes:
        iterations: `[T]` the SGD iterations at which IA was recorded (0 = initialisation).
        abundance: `{D3: [T] IA(E1)}`.
        losses: `{D3: [T] training loss}` at the same iterations.
        embedding_dim: K.
    """

    iterations: np.ndarray
    abundance: Dict[int, np.ndarray]
    losses: Dict[int, np.ndarray]
    embedding_dim: int

    def to_dict(self) -> Dict[str, Any]:
        return {
            "iterations": self.iterations.tolist(),
            "abundance": {str(k): v.tolist() for k, v in self.abundance.items()},
            "losses": {str(k): v.tolist() for k, v in self.losses.items()},
            "embedding_dim": self.embedding_dim,
        }


def _check_positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"run_toy_collapse_experiment: `{name}` must be a positive integer, received {value!r}.")
    return int(value)


def run_toy_collapse_experiment(third_field_sizes: Sequence[int] = (3, 100), num_rows: int = 100,
                                embedding_dim: int = 10, num_iterations: int = 5000, learning_rate: float = 1.0,
                                record_every: int = 50, seed: int = 0) -> ToyCollapseResult:
    """Runs the Fig. 4 toy experiment and returns IA(E1) over the iterations for each D3.

    Args:
        third_field_sizes: the cardinalities D3 to compare (paper: 3 and 100).
        num_rows: D1 = D2 (paper: 100); the data has D1 * D2 examples.
        embedding_dim: K.
        num_iterations: full-batch SGD steps (paper: 5,000).
        learning_rate: SGD step size (paper: 1).
        record_every: record IA and loss every this many steps (and at the last step).
        seed: seeds the embeddings, labels and field-3 values.

    Returns:
        A `ToyCollapseResult`.

    Example:
        >>> result = run_toy_collapse_experiment(num_iterations=1000)
        >>> bool(result.abundance[3][-1] < result.abundance[100][-1])  # the low-rank field collapses E1
        True
    """
    num_rows = _check_positive(num_rows, "num_rows")
    dim = _check_positive(embedding_dim, "embedding_dim")
    num_iterations = _check_positive(num_iterations, "num_iterations")
    record_every = _check_positive(record_every, "record_every")
    sizes = [_check_positive(size, "third_field_sizes[]") for size in third_field_sizes]
    if not sizes:
        raise ValueError("run_toy_collapse_experiment: `third_field_sizes` must name at least one cardinality.")
    if not learning_rate > 0:
        raise ValueError(f"run_toy_collapse_experiment: `learning_rate` must be > 0, received {learning_rate!r}.")

    rng = np.random.default_rng(seed)
    initial_e1 = rng.standard_normal((num_rows, dim))
    e2 = rng.standard_normal((num_rows, dim))
    labels = rng.integers(0, 2, (num_rows, num_rows)).astype(np.float64)
    # Examples are the grid (x1, x2) in row-major order: example x1 * D2 + x2.
    x2 = np.tile(np.arange(num_rows), num_rows)
    recorded = sorted(set(range(0, num_iterations + 1, record_every)) | {num_iterations})
    recorded_set = set(recorded)

    curves, losses = {}, {}
    for size in sizes:
        field_rng = np.random.default_rng([seed, size])
        x3 = field_rng.integers(0, size, num_rows * num_rows)
        e3 = field_rng.standard_normal((size, dim))
        # What e1 is multiplied with (d h / d e1), as [x1, x2, K] blocks, and <e2, e3>, fixed because E2 and E3
        # are frozen.
        partner = (e2[x2] + e3[x3]).reshape(num_rows, num_rows, dim)
        constant = np.sum(e2[x2] * e3[x3], axis=1).reshape(num_rows, num_rows)
        e1 = initial_e1.copy()
        ia, loss_curve = [], []
        for step in range(num_iterations + 1):
            logits = np.einsum("ik,ijk->ij", e1, partner) + constant
            if step in recorded_set:
                ia.append(abundance.information_abundance(e1, method="svd"))
                loss_curve.append(float(np.mean(np.logaddexp(0.0, logits) - labels * logits)))
            if step == num_iterations:
                break
            residual = (1.0 / (1.0 + np.exp(-logits)) - labels) / labels.size  # d mean-BCE / d h
            gradient = np.einsum("ij,ijk->ik", residual, partner)
            e1 -= learning_rate * gradient
        curves[size] = np.array(ia)
        losses[size] = np.array(loss_curve)
    return ToyCollapseResult(np.array(recorded), curves, losses, dim)
