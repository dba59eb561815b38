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
        "absl-py>=2.1,<3",
        "numpy>=1.26,<3",
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
            "tensorflow-serving-api>=2.21,<2.22",
        ],
    },
)
