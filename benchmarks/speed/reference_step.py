"""Times the paper's own PyTorch models (github.com/thuml/Multi-Embedding) on the inputs of `benchmarks/common.py`.

Runs under a Python that has torch and NumPy (a scratch environment, never this package's), with a checkout of the
reference next to it; nothing of the reference is in this repository. Prints one JSON line of figures, like
`throughput.py --variant=...`. `reference_side_by_side.py` runs it beside our model, round after round.

    python benchmarks/speed/reference_step.py --checkout=/tmp/Multi-Embedding --model=dcnv2 --embedding=me --scale=10

The reference's training step, as its `main.py` does it: `torch.optim.Adam(lr=1e-3, weight_decay=1e-6)` (coupled L2,
dense gradients of every `nn.Embedding`), `BCELoss` on the sigmoid output, batch 2048, dropout 0.2. Timing as ours:
one warm-up epoch, then the median time per step of the timed epochs.
"""

import argparse
import json
import os
import pathlib
import resource
import statistics
import sys
import time

if __package__ in (None, ""):  # run by path (python benchmarks/<group>/<script>.py): make `benchmarks` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from benchmarks.common import criteo_vocabulary_sizes, zipf_ids  # noqa: E402


def reference_model(model: str, embedding: str, scale: int, field_dims):
    """The reference's class for one of our zoo variants, with the hyper-parameters of its `main.py`."""
    widths = dict(mlp_dims=(400, 400), dropout=0.2)
    if model == "dnn":
        from torchfm.model.mwd import DNNModel, MultiDNNModel

        if embedding == "se":
            return DNNModel(field_dims, embed_dim=10 * scale, **widths)
        return MultiDNNModel(field_dims, embed_dims=[10] * scale, **widths)
    if model == "dcnv2":
        if embedding == "se":
            from torchfm.model.dcnv2 import CrossNetworkV2Model

            return CrossNetworkV2Model(field_dims, embed_dim=10 * scale, num_layers=4, **widths)
        from torchfm.model.awesome import MultiDCNnew2

        return MultiDCNnew2(field_dims, embed_dims=[10] * scale, num_layers=4, **widths)
    if model == "xdeepfm":
        from torchfm.model.xdfm import MultiXDeepFM, XDeepFM

        if embedding == "se":
            return XDeepFM(field_dims, embed_dim=10 * scale, cross_layer_sizes=(16, 16), **widths)
        return MultiXDeepFM(field_dims, embed_dims=[10] * scale, cross_layer_sizes=(16, 16), **widths)
    raise ValueError(f"reference_step: no reference class for model {model!r}; known: dnn, dcnv2, xdeepfm.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", required=True, help="Folder of a thuml/Multi-Embedding checkout (has torchfm/).")
    parser.add_argument("--model", required=True, choices=("dnn", "dcnv2", "xdeepfm"))
    parser.add_argument("--embedding", required=True, choices=("se", "me"))
    parser.add_argument("--scale", type=int, required=True)
    parser.add_argument("--batch_size", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--timed_epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: all cores).")
    args = parser.parse_args()
    if not os.path.isdir(os.path.join(args.checkout, "torchfm")):
        parser.error(f"--checkout={args.checkout} has no torchfm/ folder: pass a thuml/Multi-Embedding checkout.")
    sys.path.insert(0, os.path.abspath(args.checkout))

    import numpy as np
    import torch

    torch.set_num_threads(args.threads or os.cpu_count())
    torch.manual_seed(0)
    sizes = criteo_vocabulary_sizes()
    rng = np.random.default_rng(0)  # the same ids and labels as common.time_training
    rows = args.batch_size * 8
    ids = torch.from_numpy(zipf_ids(sizes, rows, rng))
    labels = torch.from_numpy((rng.random(rows) < 0.25).astype("float32"))
    model = reference_model(args.model, args.embedding, args.scale, np.array(sizes))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
    criterion = torch.nn.BCELoss()
    model.train()
    batches = rows // args.batch_size
    epoch_seconds = []
    step = 0
    for _ in range(1 + args.timed_epochs):
        started = time.perf_counter()
        for _ in range(args.steps):
            start = (step % batches) * args.batch_size
            loss = criterion(model(ids[start:start + args.batch_size]), labels[start:start + args.batch_size])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
        epoch_seconds.append(time.perf_counter() - started)
    step_s = statistics.median(epoch_seconds[1:]) / args.steps
    print(json.dumps({"model": f"reference {args.model} {args.embedding} {args.scale}x", "mode": "dense",
                      "parameters": sum(p.numel() for p in model.parameters()), "step_s": step_s,
                      "examples_per_s": args.batch_size / step_s, "loss": loss.item(),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                      "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
