# The tests run against a build tree: CNNC_LIB names its libcnn.so.0 and CNNC_BIN its cnnc
# (scripts/test.sh sets both, and PYTHONPATH=python).
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = os.environ.get("CNNC_DATA", "/usr/share/datasets/fashion-mnist")


@pytest.fixture
def root():
    return ROOT


@pytest.fixture
def cnnc_bin():
    b = os.environ.get("CNNC_BIN")
    assert b and os.path.exists(b), "set CNNC_BIN to the cnnc of the build tree under test"
    return b


@pytest.fixture
def data_dir():
    assert os.path.exists(os.path.join(DATA, "train-images-idx3-ubyte.gz")), DATA + ": no Fashion-MNIST"
    return DATA
