#!/usr/bin/env python3
"""Writes seeded fp32 weights of a network and an int8 weights file with scales, for timing
--precision int8 on networks without a calibration data set here (resnet20, vgg_small take
CIFAR-shaped input).  Weight scales are the real ones (max |w| / 127 per output channel); the
activation scales are a constant, which is fine for speed and meaningless for accuracy.

    python3 bench/make_int8_weights.py build/libcnn.so.0 examples/resnet20.cnn W.safetensors Q.safetensors

Plain Python (ctypes, struct, array): no numpy needed.
"""
import array
import ctypes as C
import json
import struct
import sys


def read_st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    data = b[8 + n:]
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        a, e = v["data_offsets"]
        out[k] = (v["shape"], array.array("f", data[a:e]))
    return out


def write_st(path, tensors):
    header, blobs, off = {}, [], 0
    for k, (shape, vals) in tensors.items():
        raw = vals.tobytes()
        header[k] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hb = json.dumps(header).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))


def main():
    lib, net, wpath, qpath = sys.argv[1:5]
    cnn = C.CDLL(lib)
    m, w = C.c_void_p(), C.c_void_p()
    if cnn.cnn_model_load(C.byref(m), net.encode(), None) != 0:
        sys.exit("cannot load " + net)
    if cnn.cnn_weights_create(C.byref(w), m, C.c_uint64(1)) != 0 or cnn.cnn_weights_save(w, wpath.encode()) != 0:
        sys.exit("cannot write " + wpath)
    t = dict(read_st(wpath))
    for k, (shape, vals) in list(t.items()):
        if k.endswith(".weight") and len(shape) >= 2:
            layer = k[: -len(".weight")]
            per = len(vals) // shape[0]
            ws = array.array("f", [])
            for o in range(shape[0]):
                a = max(abs(v) for v in vals[o * per:(o + 1) * per])
                ws.append(a / 127.0 if a > 0 else 1.0)
            t[layer + ".weight_scale"] = ([shape[0]], ws)
            t[layer + ".input_scale"] = ([1], array.array("f", [0.05]))
            t[layer + ".output_scale"] = ([1], array.array("f", [0.05]))
    write_st(qpath, t)


if __name__ == "__main__":
    main()
