"""Installs the `zero` package only, with a copy of datasets/ inside it (zero/_datasets);
steps/ and datasets/ stay repository folders.

This file must not import zero: installing has to work before numpy is there.
"""
import re

from setuptools import find_packages, setup

# the version, from zero/__init__.py without importing it
VERSION = re.search(r'^__version__ = "([^"]+)"', open("zero/__init__.py", encoding="utf-8").read(), re.M).group(1)

setup(
    name="zero-dlfs5-course",
    version=VERSION,
    description="zero: a small, readable autograd engine on NumPy/CuPy and the generative-model "
                "course (Deep Learning from Scratch 5) that runs on it",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["zero", "zero.*"]) + ["zero._datasets"],
    # a copy of the small data files of datasets/ inside the package, for installs that are not
    # editable (pip install .): zero.datasets reads the repository folder when it is there
    package_dir={"zero._datasets": "datasets"},
    package_data={"zero._datasets": ["*.txt", "README.md"]},
    # NumPy 2: its promotion rules keep float32 float32 (zero.backend.check_numpy_version). Each minimum
    # here is a version the whole test suite passed with (NumPy 2.0.2 and pytest 7.0.1 on Python 3.9)
    install_requires=["numpy>=2.0.2", "matplotlib>=3.8.4", "tqdm>=4.60"],  # matplotlib 3.8.4: the first for NumPy 2
    extras_require={
        # 13.3 or later: the earlier ones cannot be seeded under NumPy 2 (cupy/cupy#8392)
        "gpu": ["cupy-cuda12x>=13.3"],
        # scipy and scikit-learn are independent references the tests compare against
        "test": ["pytest>=7.0.1", "hypothesis>=6", "scipy", "scikit-learn"],
    },
    license="MIT",
)
