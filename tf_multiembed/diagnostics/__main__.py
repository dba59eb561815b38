"""Command line: `python -m tf_multiembed.diagnostics MODEL [MODEL ...] --output-dir DIR`.

Writes a report folder (figures, `summary.md`, `diagnostics.json`) for one or more trained models: `.keras` files,
run directories of `train.py` and exports (see `tf_multiembed.artifacts`). Give an SE and an ME model of the same
data to get the per-field comparison. Run with `--help` for the options.
"""

import sys

from tf_multiembed.artifacts import ArtifactError
from tf_multiembed.diagnostics.cli import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except ArtifactError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
