"""`python -m zero`: the report of versions, devices and data a learner pastes into a bug report."""
import gzip
import subprocess
import sys

import pytest

import zero
from zero import __main__ as report_command
from zero import mnist
from test_mnist import TEST_IMAGES, TEST_LABELS, write_test_split


def run_report(capsys, *argv):
    status = report_command.main(list(argv))
    return status, capsys.readouterr().out


def test_reports_versions_devices_and_bundled_data(capsys, tmp_path):
    status, out = run_report(capsys, "--data-dir", str(tmp_path))
    assert status == 0
    assert out.startswith(f"zero {zero.__version__} at ")
    import numpy as np
    assert f"NumPy {np.__version__}" in out
    assert "device cpu: ready" in out
    cuda_line = next(line for line in out.splitlines() if line.startswith("device cuda: "))
    assert ("ready" in cuda_line) == zero.cuda_available()
    assert "Old Faithful: 272 rows" in out and "height/weight: 507 rows" in out


def test_variables_that_pin_openblas_to_a_kernel_are_named_under_numpy(capsys, tmp_path, monkeypatch):
    for name in report_command.BLAS_PINNING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    _, out = run_report(capsys, "--data-dir", str(tmp_path))
    assert "OPENBLAS" not in out
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    _, out = run_report(capsys, "--data-dir", str(tmp_path))
    lines = out.splitlines()
    assert lines[2].startswith("NumPy ")
    assert lines[3].startswith("  OPENBLAS_CORETYPE=Haswell set: OpenBLAS uses that, not its own choice")
    assert "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE" in lines[3]


def test_the_convolution_threads_are_reported(capsys, tmp_path, monkeypatch):
    from zero import threads

    def report_with(value, openblas=("get", "set")):
        monkeypatch.setattr(threads, "_threads", threads._Threads())
        monkeypatch.setattr(threads, "_find_openblas", lambda: openblas)
        monkeypatch.setenv("ZERO_THREADS", value)
        _, out = run_report(capsys, "--data-dir", str(tmp_path))
        return next(line for line in out.splitlines() if line.startswith("convolutions: "))
    assert report_with("3").startswith("convolutions: on 3 threads of zero's own, NumPy's OpenBLAS held")
    assert report_with("1") == "convolutions: on the calling thread (ZERO_THREADS=1)"
    assert report_with("", None) == "convolutions: on the calling thread (NumPy's BLAS is not an OpenBLAS zero can find)"
    assert report_with("", (lambda: 1, None)) == "convolutions: on the calling thread (OpenBLAS runs one thread)"
    assert report_with("many") == "convolutions: PROBLEM: ZERO_THREADS must be a whole number >= 1, got 'many'"


def test_missing_mnist_files_are_listed_with_where_they_would_go(capsys, tmp_path):
    status, out = run_report(capsys, "--data-dir", str(tmp_path))
    assert status == 0  # nothing there is not an error: a first run downloads them
    assert f"MNIST folder: {tmp_path} (--data-dir)" in out
    assert f"test: missing {TEST_IMAGES}, {TEST_LABELS}" in out
    assert ("train: missing train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz: downloaded into this folder on "
            "first use") in out


def test_valid_files_are_checked_and_counted(capsys, tmp_path):
    write_test_split(tmp_path)
    status, out = run_report(capsys, "--data-dir", str(tmp_path))
    assert status == 0
    assert f"test: 10,000 images and labels, valid ({TEST_IMAGES}, {TEST_LABELS})" in out
    # the report said the training files would be downloaded on first use, but --source auto then takes the test split
    assert ("train: missing train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz: not needed while the test split "
            "is here (--source auto trains on its first 8,000 images); --source train downloads them") in out


def test_a_damaged_file_is_named_and_fails_the_command(capsys, tmp_path):
    write_test_split(tmp_path)
    labels = tmp_path / TEST_LABELS
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes())[:-5]))  # five labels short
    status, out = run_report(capsys, "--data-dir", str(tmp_path))
    assert status == 1
    damaged = [line for line in out.splitlines() if "DAMAGED" in line]
    assert len(damaged) == 1 and str(labels) in damaged[0] and "truncated" in damaged[0]


@pytest.mark.parametrize("below", [False, True])
def test_a_data_dir_that_is_a_file_fails_the_command(capsys, tmp_path, below):
    """A run would stop there (SetupError): the report said both splits were missing and would be downloaded."""
    file = tmp_path / "notafolder"
    file.write_text("")
    status, out = run_report(capsys, "--data-dir", str(file / "mnist" if below else file))
    assert status == 1
    assert f"PROBLEM: {file} is a file, not a folder" in out and "missing" not in out


def test_the_folder_comes_from_the_environment_variable(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(mnist.ENV_VAR, str(tmp_path))
    _, out = run_report(capsys)
    assert f"MNIST folder: {tmp_path} (${mnist.ENV_VAR})" in out


@pytest.mark.parametrize("damage", ["delete", "garble"])
def test_a_missing_or_damaged_data_set_fails_the_command(capsys, tmp_path, monkeypatch, damage):
    from zero import datasets
    for path in datasets.DATA_DIR.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    target = tmp_path / datasets.OLD_FAITHFUL
    if damage == "delete":
        target.unlink()
    else:
        target.write_text("eruptions waiting\n3.6 seventy-nine\n")
    monkeypatch.setattr(datasets, "DATA_DIR", tmp_path)
    status, out = run_report(capsys, "--data-dir", str(tmp_path))
    assert status == 1
    assert "Old Faithful: DAMAGED or missing" in out and datasets.OLD_FAITHFUL in out


def test_python_dash_m_zero_runs(tmp_path):
    run = subprocess.run([sys.executable, "-m", "zero", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"zero {zero.__version__} at ") and run.stderr == ""
