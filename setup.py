"""Packaging for tf-multiembed."""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent

setup(
    name="tf-multiembed",
    version="0.1.0",
    description=(
        "Multi-embedding CTR models for TensorFlow/Keras that scale with embedding size "
        "(Guo et al., ICML 2024), with embedding-collapse diagnostics."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tf_multiembed", "tf_multiembed.*"]),
    python_requires=">=3.10,<3.14",
    install_requires=[
        # The full `tensorflow` wheel (runs on CPU too); tf-keras, TFRS and
        # tensorflow-serving-api all require this distribution name.
        "tensorflow>=2.21,<2.22",
        "keras>=3.10,<4",
        "tensorflow-datasets>=4.9.10,<4.10",
        # tensorflow-datasets 4.9.x imports it without declaring it.
        "importlib_resources>=6",
        # tensorflow-transform (the [beam] extra) needs absl-py<2; TensorFlow 2.21 accepts 1.4 too.
        "absl-py>=1.4,<3",
        "numpy>=1.26,<3",
        # The columnar ingest engine (multithreaded CSV/Parquet readers, compute kernels); tf.Transform 1.21 pins
        # pyarrow 25, so the range keeps it.
        "pyarrow>=15,<27",
        # CRC-32C checksums of the TFRecord shards, written without TensorFlow (tf_multiembed/data/shards.py).
        "google-crc32c>=1.5,<2",
        "pyyaml>=6,<7",
        "matplotlib>=3.8,<4",
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "scikit-learn>=1.4,<2",
            "nbclient>=0.10,<1",
            "nbformat>=5.10,<6",
            "ipykernel>=6.29,<8",
            # `make lint`: the rule set and the checked files are in pyproject.toml.
            "ruff>=0.17,<0.18",
            "mypy>=2.4,<3",
        ],
        "tfrs": [
            "tf-keras>=2.21,<2.22",
            "tensorflow-recommenders>=0.7.3,<0.8",
        ],
        "serving": [
            # 2.19 and 2.20 accept TensorFlow 2.21; tensorflow-transform 1.21 (the [beam] extra) needs <2.20.
            "tensorflow-serving-api>=2.19,<2.22",
        ],
        # Running the notebooks in notebooks/ (JupyterLab, and `jupyter execute` through nbclient); they need
        # nothing else beyond the package itself.
        "notebooks": [
            "jupyterlab>=4,<5",
            "ipykernel>=6.29,<8",
            "nbclient>=0.10,<1",
        ],
        # Viewing the TensorBoard scalars a run writes under <model_dir>/logs (`tensorboard --logdir runs`); writing
        # them needs no tensorboard package. TensorBoard's minor version follows TensorFlow's.
        "tensorboard": [
            "tensorboard>=2.21,<2.22",
        ],
        # The Beam/tf.Transform pipeline (tf_multiembed.data.beam): prepared data beyond one machine.
        "beam": [
            "tensorflow-transform>=1.21,<1.22",
            "apache-beam>=2.60,<3",
        ],
    },
)
