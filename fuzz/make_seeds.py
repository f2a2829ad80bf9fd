#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/NAME/seed-*), deterministically, from
the repository's examples and fixtures and from small files made here.  Run from the repository
root: python3 fuzz/make_seeds.py.  Only the standard library is needed.  Files the fuzzers add
(minimised with -merge=1) and regressions/ are left alone."""
import glob
import gzip
import json
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def floats(n, k=0):
    return struct.pack("<%df" % n, *[((i * 7 + k) % 11 - 5) / 10.0 for i in range(n)])


def safetensors(tensors, metadata=None, pad=True):
    """tensors: [(name, shape, bytes)] in order."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, shape, data in tensors:
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


# fuzz/fuzz_model.h: conv2d(2, 3) -> batchnorm -> relu -> maxpool(2) -> flatten -> dense(4) -> relu -> dense(3)
NET = [
    ("conv2d_1.weight", [2, 1, 3, 3]), ("conv2d_1.bias", [2]),
    ("batchnorm_1.weight", [2]), ("batchnorm_1.bias", [2]),
    ("batchnorm_1.running_mean", [2]), ("batchnorm_1.running_var", [2]),
    ("dense_1.weight", [4, 8]), ("dense_1.bias", [4]),
    ("dense_2.weight", [3, 4]), ("dense_2.bias", [3]),
]
SEQ = {"conv2d_1": "0", "batchnorm_1": "1", "dense_1": "5", "dense_2": "7"}
TRAINABLE = [t for t in NET if not t[0].endswith(("running_mean", "running_var"))]


def weights(rename=lambda n: n):
    return [(rename(n), s, floats(numel(s), i)) for i, (n, s) in enumerate(NET)]


def seeds_weights():
    out("safetensors", "plain", b"\0" + safetensors(weights()))
    out("safetensors", "metadata", b"\0" + safetensors(weights(), {"format": "pt"}))
    out("safetensors", "sequential", b"\0" + safetensors(
        weights(lambda n: SEQ[n.split(".")[0]] + "." + n.split(".", 1)[1])))
    out("safetensors", "extra", b"\1" + safetensors(weights() + [("other.weight", [2, 2], floats(4))]))
    out("safetensors", "unpadded", b"\0" + safetensors(weights(), pad=False))
    out("safetensors", "scalar_and_empty", b"\1" + safetensors(
        weights() + [("s", [], floats(1)), ("e", [0, 3], b"")]))


def checkpoint(opt):
    t = weights()
    k = 100
    for name, shape in TRAINABLE:
        for state in {"sgd": ["momentum_buffer"], "adam": ["exp_avg", "exp_avg_sq"]}[opt]:
            t.append((name + "." + state, shape, floats(numel(shape), k)))
            k += 1
    # the keys runtime/checkpoint.c writes (every value a string, as safetensors requires)
    meta = {"format": "cnnc-checkpoint", "version": "1", "network": "fuzz_net",
            "epochs_done": "2", "epoch_step": "0", "steps_per_epoch": "20", "total_steps": "60",
            "step": "40", "session_step": "40", "lr": "0.05", "shuffle": "true",
            "shuffle_state": "12345678901234567", "shuffle_seed": "0", "seed": "0", "batch": "4",
            "examples": "80", "val": "0", "loss": "cross_entropy", "optimizer": opt,
            "momentum": "0.9", "nesterov": "false", "weight_decay": "0", "beta1": "0.9",
            "beta2": "0.999", "eps": "1e-08", "threads": "1", "backend": "auto",
            "epoch_loss_sum": "0", "epoch_correct": "0", "epoch_seen": "0", "first_loss": "1.386",
            "best_accuracy": "0.8125", "best_epoch": "2", "bad_epochs": "0", "elapsed": "1.5",
            "train_loss": "0.4375", "train_accuracy": "0.75", "val_loss": "nan",
            "val_accuracy": "nan", "test_loss": "0.5", "test_accuracy": "0.7"}
    return safetensors(t, meta)


def seeds_checkpoint():
    out("checkpoint", "sgd", checkpoint("sgd"))
    out("checkpoint", "adam", checkpoint("adam"))
    out("checkpoint", "weights_only", safetensors(weights()))


def npy(shape, data=None, version=1, descr="<f4", fortran=False):
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (
        descr, "True" if fortran else "False",
        ", ".join(str(x) for x in shape) + ("," if len(shape) == 1 else ""))
    lenbytes = 2 if version == 1 else 4
    total = 6 + 2 + lenbytes + len(d) + 1
    d += " " * (-total % 64) + "\n"
    pre = b"\x93NUMPY" + bytes([version, 0])
    pre += struct.pack("<H" if version == 1 else "<I", len(d))
    if data is None:
        data = floats(numel(shape))
    return pre + d.encode("latin1") + data


def seeds_npy():
    for p in sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "*.in1.npy"))):
        if os.path.getsize(p) <= 4096:
            with open(p, "rb") as f:
                out("npy", os.path.basename(p), f.read())
    out("npy", "scalar", npy([]))
    out("npy", "empty", npy([0]))
    out("npy", "rank8", npy([1, 2, 1, 2, 1, 1, 2, 1]))
    out("npy", "v2", npy([2, 3], version=2))
    out("npy", "v3", npy([3], version=3))


def idx_pair(images, labels):
    return struct.pack("<I", len(images)) + images + labels


def idx_images(count, rows, cols):
    return struct.pack(">IIII", 0x803, count, rows, cols) + bytes((i * 37) % 256 for i in range(count * rows * cols))


def idx_labels(count, classes=4):
    return struct.pack(">II", 0x801, count) + bytes(i % classes for i in range(count))


def gz(b):
    return gzip.compress(b, mtime=0)


def seeds_idx():
    data = os.path.join(ROOT, "tests", "fixtures", "train_plain_data")
    pairs = []
    for split in ("train", "t10k"):
        with open(os.path.join(data, split + "-images-idx3-ubyte"), "rb") as f:
            im = f.read()
        with open(os.path.join(data, split + "-labels-idx1-ubyte"), "rb") as f:
            lb = f.read()
        pairs.append((split, im, lb))
    pairs.append(("one", idx_images(1, 8, 8), idx_labels(1)))
    pairs.append(("wide", idx_images(3, 2, 40), idx_labels(3, 10)))
    for name, im, lb in pairs:
        out("idx", name, idx_pair(im, lb))
        out("idx_gz", name, idx_pair(gz(im), gz(lb)))


def seeds_source():
    paths = sorted(glob.glob(os.path.join(ROOT, "examples", "*.cnn")) +
                   glob.glob(os.path.join(ROOT, "tests", "fixtures", "*.cnn")))
    seen = set()
    for p in paths:
        with open(p, "rb") as f:
            b = f.read()
        if len(b) > 8192 or b in seen:
            continue
        seen.add(b)
        tag = "ex-" if "/examples/" in p else "fx-"
        out("source", tag + os.path.basename(p), b)


if __name__ == "__main__":
    seeds_source()
    seeds_weights()
    seeds_checkpoint()
    seeds_npy()
    seeds_idx()
