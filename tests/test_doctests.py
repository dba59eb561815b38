"""The `>>>` examples of every tf_multiembed module run as doctests: an example that stops matching the code fails
here. Examples that need files or services outside the test say `# doctest: +SKIP`; the others run in a temporary
working directory, so any file they write stays out of the checkout."""

import doctest
import importlib
import importlib.util
import pkgutil

import numpy as np
import pytest
import tensorflow as tf

import tf_multiembed

# Modules that need an optional extra, and the module that must be importable for them.
_NEEDS = {"tf_multiembed.data.beam": "apache_beam", "tf_multiembed.data.tfds": "tensorflow_datasets"}
_OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names():
    names = [tf_multiembed.__name__]
    for module in pkgutil.walk_packages(tf_multiembed.__path__, prefix=f"{tf_multiembed.__name__}."):
        if module.name.rsplit(".", 1)[-1] != "__main__":  # command lines: importing them defines flags or runs
            names.append(module.name)
    return sorted(names)


def _examples(module):
    return [test for test in doctest.DocTestFinder(exclude_empty=True).find(module, module.__name__)
            if test.examples]


@pytest.mark.parametrize("name", _module_names())
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    for prefix, requirement in _NEEDS.items():
        if name.startswith(prefix) and importlib.util.find_spec(requirement) is None:
            pytest.skip(f"{name} needs {requirement}")
    module = importlib.import_module(name)
    monkeypatch.chdir(tmp_path)
    runner = doctest.DocTestRunner(optionflags=_OPTIONS)
    for test in _examples(module):
        # The examples see their module's names, plus `tf` and `np` as the package's docs write them.
        test.globs = {"tf": tf, "np": np, **test.globs}
        failures = []
        runner.run(test, out=failures.append)
        assert not failures, "".join(failures)
