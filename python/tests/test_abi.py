# The ctypes Structures of python/cnnc against the C structs they mirror: size, field names and
# order, each field's offset and size, as the compiler lays them out from cnn.h.  tests/abi_layout
# prints that layout; it is found through $CNNC_ABI_LAYOUT, else in the build tree of $CNNC_BIN
# (<build>/tests/abi_layout beside <build>/cnnc).  A field added to a C struct and not here would
# otherwise make Python read and write the wrong bytes without any error.
import ctypes
import json
import os
import subprocess

import pytest

import cnnc

# Python class of python/cnnc/__init__.py -> the struct of cnn.h it mirrors
MIRRORS = {
    "_Options": "cnn_options",
    "_AugmentStep": "cnn_augment_step",
    "_TrainConfig": "cnn_train_config",
    "_StepInfo": "cnn_train_step_info",
    "_EpochInfo": "cnn_train_epoch_info",
    "_TrainOptions": "cnn_train_options",
    "_TrainResult": "cnn_train_result",
    "_EvalResult": "cnn_eval_result",
}


@pytest.fixture(scope="module")
def c_layout():
    prog = os.environ.get("CNNC_ABI_LAYOUT")
    if not prog:
        b = os.environ.get("CNNC_BIN")
        assert b, "set CNNC_ABI_LAYOUT to tests/abi_layout of the build tree, or CNNC_BIN to its cnnc"
        prog = os.path.join(os.path.dirname(b), "tests", "abi_layout")
    # a missing program fails rather than skips: a skipped check is one nobody notices
    assert os.path.exists(prog), prog + ": not built (ninja builds tests/abi_layout by default)"
    out = subprocess.run([prog], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def _structs_in_module():
    return {n for n, v in vars(cnnc).items()
            if isinstance(v, type) and issubclass(v, ctypes.Structure) and v.__module__ == cnnc.__name__}


def test_mirrored_structs_are_the_listed_ones(c_layout):
    # the three lists (the module's Structures, MIRRORS, tests/abi_layout.c) name the same structs
    py = _structs_in_module()
    assert py == set(MIRRORS), ("ctypes Structures of cnnc not in MIRRORS: %s; in MIRRORS, not in cnnc: %s"
                                % (sorted(py - set(MIRRORS)) or "none", sorted(set(MIRRORS) - py) or "none"))
    c = set(c_layout)
    want = set(MIRRORS.values())
    assert c == want, ("tests/abi_layout prints structs Python does not mirror: %s; Python mirrors structs "
                       "tests/abi_layout does not print: %s" % (sorted(c - want) or "none", sorted(want - c) or "none"))


@pytest.mark.parametrize("py_name", sorted(MIRRORS))
def test_layout(c_layout, py_name):
    c_name = MIRRORS[py_name]
    assert c_name in c_layout, "%s: tests/abi_layout does not print %s" % (py_name, c_name)
    cs = c_layout[c_name]
    ps = getattr(cnnc, py_name)
    what = "%s (cnnc.%s)" % (c_name, py_name)
    problems = []
    if ctypes.sizeof(ps) != cs["size"]:
        problems.append("size: C %d, Python %d" % (cs["size"], ctypes.sizeof(ps)))
    c_names = [f["name"] for f in cs["fields"]]
    p_names = [f[0] for f in ps._fields_]
    if c_names != p_names:
        i = next((i for i, (a, b) in enumerate(zip(c_names, p_names)) if a != b), min(len(c_names), len(p_names)))
        problems.append("fields differ from field %d on: C %s, Python %s" % (i, c_names[i:], p_names[i:]))
    for f in cs["fields"]:
        if f["name"] not in p_names:
            continue
        pf = getattr(ps, f["name"])
        if (pf.offset, pf.size) != (f["offset"], f["size"]):
            problems.append("field %s: C offset %d size %d, Python offset %d size %d"
                            % (f["name"], f["offset"], f["size"], pf.offset, pf.size))
    assert not problems, what + " does not match the C struct:\n  " + "\n  ".join(problems)
