"""The report command line (`python -m tf_multiembed.diagnostics`), kept importable for tests."""

import argparse
import math
import json
import pathlib
from typing import List, Optional, Sequence

import numpy as np

from tf_multiembed import types
from tf_multiembed.diagnostics import loading
from tf_multiembed.diagnostics import report
from tf_multiembed.diagnostics.tables import IdCounts


def _name_list(text: str) -> List[str]:
    return [part.strip() for part in text.split(",")]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tf_multiembed.diagnostics",
        description="Embedding-collapse report (information abundance per field and set, spectra, "
                    "interaction-projected IA) for trained models of tf_multiembed.",
    )
    parser.add_argument("models", nargs="+",
                        help="a .keras file, a run directory (train.py --model_dir) or an export "
                             "(<export_dir>/<name>/<version>, or <export_dir>/<name> for its newest version); "
                             "several models (e.g. SE and ME of the same data) are compared")
    parser.add_argument("--output-dir", default="diagnostics_report", help="report folder (default %(default)s)")
    parser.add_argument("--labels", type=_name_list, default=None,
                        help="comma-separated labels, one per model (default: file names)")
    parser.add_argument("--id-counts", default=None,
                        help=".npy/.npz file with training counts per table row (flat, length sum(D)) or per field "
                             "(npz arrays field_0, field_1, ...): rows never seen in training are reported apart")
    parser.add_argument("--min-count", type=int, default=1,
                        help="rows seen fewer times than this count as untrained (default %(default)s)")
    parser.add_argument("--field-names", type=_name_list, default=None, help="comma-separated field names")
    parser.add_argument("--history", default=None,
                        help="JSON written by InformationAbundanceCallback(json_path=...), to plot IA over training")
    return parser


def load_id_counts(path: types.PathLike) -> IdCounts:
    """Reads `--id-counts`: a .npy flat array over all rows, or a .npz with `field_<i>` arrays (or one array)."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--id-counts {path}: no such file.")
    data = np.load(path)
    if isinstance(data, np.ndarray):
        return data
    names = sorted(data.files, key=lambda name: (len(name), name))
    if len(names) == 1:
        return data[names[0]]
    expected = [f"field_{i}" for i in range(len(names))]
    if sorted(names) != sorted(expected):
        raise ValueError(
            f"--id-counts {path}: expected arrays named field_0 .. field_{len(names) - 1} (one per field) or a single "
            f"flat array, found {data.files}."
        )
    return [data[name] for name in expected]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command and returns 0; paths that are not models by the artifact contract raise `ArtifactError`."""
    args = build_parser().parse_args(argv)
    if args.labels is not None and len(args.labels) != len(args.models):
        raise SystemExit(f"--labels has {len(args.labels)} entries for {len(args.models)} models; give one each.")
    labels = args.labels or [loading.default_label(path) for path in args.models]
    if len(set(labels)) != len(labels):
        labels = [f"{label}_{index}" for index, label in enumerate(labels)]
    sources = {
        label: loading.load_for_diagnostics(path, field_names=args.field_names)
        for label, path in zip(labels, args.models)
    }
    id_counts = None if args.id_counts is None else load_id_counts(args.id_counts)
    history = None
    if args.history is not None:
        history = json.loads(pathlib.Path(args.history).read_text(encoding="utf-8"))
    results = report.write_report(sources, args.output_dir, id_counts=id_counts, min_count=args.min_count,
                                  field_names=args.field_names, history=history)
    for label, result in results.items():
        summary = result.embedding.summary()
        print(f"{label}: mean IA {summary['mean_concat_abundance']:.3f} (random "
              f"{summary['mean_random_concat_abundance']:.3f}), min {summary['min_concat_abundance']:.3f}; "
              f"mean RankMe {summary['mean_concat_effective_rank']:.3f} (random "
              f"{summary.get('mean_random_concat_effective_rank', math.nan):.3f})")
    print(f"Report written to {pathlib.Path(args.output_dir) / 'summary.md'}")
    return 0
