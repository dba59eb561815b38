"""The data build's settings are declared once (`BuildSettings`): `prepare_dataset`'s keyword arguments, the Beam
settings and the Beam command line's flags carry its names, defaults and help."""

import importlib.util
import inspect
import os
import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest

from data_test_files import SMALL_CRITEO_LINES, small_criteo_schema, write_lines
from tf_multiembed import settings as settings_lib
from tf_multiembed.data import prepare_dataset
from tf_multiembed.data.build import BuildSettings

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DECLARED = settings_lib.setting_defaults(BuildSettings)


def test_two_scripts_of_one_process_may_ask_for_the_same_declared_flag():
    # benchmarks/data/ingest.py and benchmarks/quality/scaling.py both define train.py's --batch_size; a test run
    # importing both used to fail with absl's DuplicateFlagError.
    from absl import flags

    from tf_multiembed.training import config as run_config

    flag_values = flags.FlagValues()
    run_config.define_flags(["batch_size"], flag_values)
    run_config.define_flags(["batch_size", "epochs"], flag_values)
    flag_values(["prog", "--batch_size=64"])
    assert flag_values.batch_size == 64 and flag_values["epochs"].default == run_config.RunConfig().epochs
    with pytest.raises(flags.DuplicateFlagError):  # a flag of that name from elsewhere is still refused
        flags.DEFINE_integer("epochs", 1, "another epochs", flag_values=flag_values)


def test_the_declaration_holds_every_build_setting():
    assert DECLARED == {"split": "random", "seed": 0, "split_fractions": (0.8, 0.1, 0.1), "strict": False,
                        "max_skipped_fraction": 0.01, "rows_per_shard": 1_000_000, "rows_per_record": 1024}


def test_prepare_dataset_takes_names_defaults_and_help_from_the_declaration(tmp_path):
    parameters = inspect.signature(prepare_dataset).parameters
    settings = {name: parameter.default for name, parameter in parameters.items() if name in DECLARED}
    assert settings == DECLARED
    assert list(parameters)[-len(DECLARED):] == list(DECLARED)  # the declared order, keyword-only
    for field in settings_lib.declared_fields(BuildSettings):
        assert f"{field.name}: {settings_lib.setting_help(field)[:40]}" in " ".join(prepare_dataset.__doc__.split())
    # Called without settings, the build records exactly the declaration's defaults.
    data = prepare_dataset(small_criteo_schema(min_count=1), write_lines(tmp_path / "a.tsv", SMALL_CRITEO_LINES),
                           tmp_path / "cache")
    assert data.settings == BuildSettings()
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['splits'\]; the build settings are "
                                        r"\['split', 'seed'"):
        prepare_dataset(small_criteo_schema(), tmp_path / "a.tsv", tmp_path / "cache", splits="time")


def test_build_settings_checks_each_value_where_it_enters():
    with pytest.raises(ValueError, match=r"^`seed` must be >= 0, received -1\.$"):
        BuildSettings(seed=-1)
    with pytest.raises(ValueError, match=r"^`max_skipped_fraction` must be <= 1.0, received 1.5\.$"):
        BuildSettings(max_skipped_fraction=1.5)
    with pytest.raises(ValueError, match=r"^`rows_per_record` must be an integer, received True\.$"):
        BuildSettings(rows_per_record=True)


@pytest.mark.skipif(importlib.util.find_spec("apache_beam") is None, reason="the [beam] extra is not installed")
def test_beam_settings_and_flags_come_from_the_declaration():
    from tf_multiembed.data.beam.pipeline import FLAG_SETTINGS, BeamSettings

    assert {name: default for name, default in settings_lib.setting_defaults(BeamSettings).items()
            if name in DECLARED} == DECLARED
    with pytest.raises(ValueError, match="writes the random split only"):
        BeamSettings(split="time")
    # The command line as a user meets it: its --helpxml lists each setting with the declaration's default and help.
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    xml = subprocess.run([sys.executable, "-m", "tf_multiembed.data.beam", "--helpxml"], capture_output=True,
                         text=True, cwd=REPO_ROOT, env=environment, timeout=300).stdout  # absl exits 1
    flags = {flag.findtext("name"): flag for flag in ElementTree.fromstring(xml).iter("flag")}
    fields = {field.name: field for field in settings_lib.declared_fields(BeamSettings)}
    assert set(FLAG_SETTINGS) == set(fields) - {"split"} and "split" not in flags
    for name in FLAG_SETTINGS:
        field = fields[name]
        expected = ",".join(map(str, field.default)) if isinstance(field.default, tuple) else str(field.default)
        assert flags[name].findtext("default").lower() == expected.lower(), name
        assert flags[name].findtext("meaning") == settings_lib.setting_help(field), name
