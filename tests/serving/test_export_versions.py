"""Export version numbers are claimed atomically: two exports to one name at once get two versions, and a failed or
killed export leaves neither its staging folder nor its claim behind."""

import os
import pathlib
import socket
import subprocess
import sys
import threading

import pytest

import serving_fixtures
from tf_multiembed.serving import export as export_lib
from tf_multiembed.serving import export_for_serving


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return serving_fixtures.build_serving_setup(tmp_path_factory.mktemp("serving_versions"))


def _hidden(root: pathlib.Path):
    return sorted(path.name for path in root.iterdir() if path.name.startswith("."))


def test_two_concurrent_exports_to_one_name_get_two_versions(setup, tmp_path, monkeypatch):
    # The race of the issue: both exporters pick their version before either renames its staging folder into place
    # (before the claim, both picked 1 and the second rename failed with "Directory not empty", its staging left).
    # The barrier holds each export after writing its staging folder until both are there; the lock keeps the two
    # SavedModel writes one after the other (the race is in the numbering, not in writing).
    both_staged, one_writer = threading.Barrier(2, timeout=120), threading.Lock()
    write_version = export_lib._write_version

    def write_then_wait(*args, **kwargs):
        with one_writer:
            write_version(*args, **kwargs)
        both_staged.wait()

    monkeypatch.setattr(export_lib, "_write_version", write_then_wait)
    encoder = setup.data.feature_encoder()
    paths, errors = [], []

    def export():
        try:
            paths.append(export_for_serving(setup.model, encoder, tmp_path, "clicks"))
        except Exception as error:  # noqa: BLE001  (reported by the assertion below)
            errors.append(error)

    threads = [threading.Thread(target=export) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(path.name for path in paths) == ["1", "2"]
    for path in paths:
        assert (path / "saved_model.pb").is_file() and (path / "assets.extra" / "tf_multiembed.json").is_file()
    assert _hidden(tmp_path / "clicks") == []  # no staging folder, no claim


def test_a_claimed_version_is_skipped_and_an_explicit_one_refused(setup, tmp_path):
    root = tmp_path / "clicks"
    assert export_lib.claim_version(root) == 1  # another exporter holds 1 (not renamed yet)
    path = export_for_serving(setup.model, setup.data.feature_encoder(), tmp_path, "clicks")
    assert path.name == "2"
    with pytest.raises(FileExistsError, match=r"clicks/1 exists or is being exported by another process"):
        export_for_serving(setup.model, setup.data.feature_encoder(), tmp_path, "clicks", version=1)
    export_lib.release_version(root, 1)
    assert _hidden(root) == []
    assert export_lib.claim_version(root) == 3 and export_lib.claim_version(root) == 4


def test_a_failed_export_leaves_no_staging_folder_and_no_claim(setup, tmp_path, monkeypatch):
    def fail_half_way(model, encoder, model_name, version, staging, *args, **kwargs):
        (staging / "variables").mkdir(parents=True)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_lib, "_write_version", fail_half_way)
    with pytest.raises(OSError, match="No space left"):
        export_for_serving(setup.model, setup.data.feature_encoder(), tmp_path, "clicks")
    assert list((tmp_path / "clicks").iterdir()) == []


def test_claims_of_dead_processes_are_removed_by_the_next_export(setup, tmp_path):
    root = tmp_path / "clicks"
    root.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (root / ".claim-1").write_text(f"{socket.gethostname()} {dead_pid}\n")
    (root / f".staging-1-{socket.gethostname()}-{dead_pid}").mkdir()
    (root / ".claim-2").write_text(f"{socket.gethostname()} {os.getpid()}\n")  # alive: kept
    path = export_for_serving(setup.model, setup.data.feature_encoder(), tmp_path, "clicks")
    assert path.name == "1"
    assert _hidden(root) == [".claim-2"]
