"""What `pip install .` (not editable) puts on a learner's machine: the zero package with a copy of
the bundled data sets, and nothing else at the top level; the data then load from that copy."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_FILES = sorted(p.name for p in (ROOT / "datasets").iterdir() if p.suffix in (".txt", ".md"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel pip builds from a copy of the project's packaging files (the build writes its
    build/ and egg-info folders into that copy, not into the repository)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("zero", "datasets"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    # --use-pep517: an isolated build, as recent pip always does (Python 3.9's pip would otherwise
    # need the wheel package in the test's environment)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--use-pep517", "-q",
                            "-w", str(out), str(source)], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{build.stdout}\n{build.stderr}")
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_holds_zero_and_a_copy_of_the_data_sets_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"zero"}  # steps/, datasets/, tests/, benchmarks/ stay repository folders
    assert {name.split("/")[-1] for name in names if name.startswith("zero/_datasets/")} == set(DATA_FILES)
    modules = {str(p.relative_to(ROOT).as_posix()) for p in (ROOT / "zero").rglob("*.py")}
    assert modules <= set(names)


def test_an_installed_zero_reads_its_copy_of_the_data(wheel, tmp_path):
    """Installed into a folder of its own and imported from elsewhere: the repository's datasets/ is
    nowhere near, and a folder named datasets beside the package (another project's) is not used."""
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                              str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    (site / "datasets").mkdir()  # as Hugging Face's `datasets` package would be
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import zero.datasets as d; "
            "print(d.DATA_DIR); print(d.load_old_faithful().shape, d.load_height_weight().shape)")
    run = subprocess.run([sys.executable, "-c", code, str(site)], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    data_dir, shapes = run.stdout.splitlines()
    assert Path(data_dir) == (site / "zero" / "_datasets").resolve()
    assert shapes == "(272, 2) (507, 2)"


def test_a_checkout_reads_the_repository_folder():
    from zero.datasets import DATA_DIR
    assert DATA_DIR == ROOT / "datasets"  # pip install -e . (or PYTHONPATH): the files one edits


def test_the_wheel_carries_the_version_zero_reports(wheel):
    import zero
    assert wheel.name.startswith(f"zero_dlfs5_course-{zero.__version__}-")  # setup.py reads zero/__init__.py
