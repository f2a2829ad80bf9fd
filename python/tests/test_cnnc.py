import subprocess

import numpy as np
import pytest

import cnnc


def lenet(root, **kw):
    return cnnc.Model(str(root / "examples/lenet5.cnn"), **kw)


def test_shapes(root):
    m = lenet(root)
    assert m.name == "lenet5"
    assert m.inputs == [(1, 28, 28)] and m.outputs == [(10,)]
    assert m.input_names == ["image"] and m.output_names == ["logits"]
    assert m.train_config["batch"] == 64
    # the whole of cnn_train_config (cnn_model_train_config writes all of it)
    tc = m.train_config
    assert tc["clip_grad_norm"] == 0 and tc["schedule"] == 0 and tc["augment"] == [] and tc["mean"] == []


def test_version_and_build_match_cnnc(cnnc_bin):
    out = subprocess.run([cnnc_bin, "--version"], check=True, capture_output=True, text=True).stdout.strip()
    b = cnnc.build_id()
    assert out == "cnnc " + cnnc.version() + (" (" + b + ")" if b else "")


def test_run_matches_cnnc_run(root, cnnc_bin, tmp_path):
    x = np.random.default_rng(1).random((5, 1, 28, 28), dtype=np.float32)
    np.save(tmp_path / "in.npy", x)
    subprocess.run([cnnc_bin, "run", str(root / "examples/lenet5.cnn"), "-i", str(tmp_path / "in.npy"),
                    "-o", str(tmp_path / "out.npy"), "--seed", "7", "-q"], check=True)
    want = np.load(tmp_path / "out.npy")
    got = lenet(root, seed=7).run(x)
    assert got.shape == (5, 10) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    # another batch size, and a float64 non-contiguous input (converted)
    got2 = lenet(root, seed=7).run(np.asfortranarray(x[:2].astype(np.float64)))
    np.testing.assert_allclose(got2, want[:2], rtol=1e-5, atol=1e-6)


def test_weights_round_trip(root, tmp_path):
    a = lenet(root, seed=3)
    a.save_weights(tmp_path / "w.safetensors")
    b = lenet(root, seed=4)
    x = np.random.default_rng(2).random((3, 1, 28, 28), dtype=np.float32)
    assert not np.array_equal(a.run(x), b.run(x))
    b.load_weights(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(a.run(x), b.run(x))
    assert a.weights.keys() == b.weights.keys()
    for (n, wa), (_, wb) in zip(a.weights.items(), b.weights.items()):
        np.testing.assert_array_equal(wa, wb, err_msg=n)
    assert a.weights["conv2d_1.weight"].shape == (6, 1, 5, 5)


def test_tuned_run_matches_untuned(root, tmp_path):
    x = np.random.default_rng(3).random((2, 1, 28, 28), dtype=np.float32)
    want = lenet(root, seed=5).run(x)
    got = lenet(root, seed=5, tune="on", tune_cache=str(tmp_path / "tune.json")).run(x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert (tmp_path / "tune.json").exists()
    with pytest.raises(cnnc.Error, match="unknown tune"):
        lenet(root, tune="sometimes")


def test_winograd_matches_direct():
    src = ("network w { input image[32, 10, 10];\n"
           "  output y = image -> conv2d(32, 3, pad=1) -> relu -> conv2d(32, 3, pad=1) -> flatten -> dense(4); }")
    x = np.random.default_rng(4).random((3, 32, 10, 10), dtype=np.float32) - 0.5
    want = cnnc.Model(source=src, seed=2, conv_algo="direct").run(x)
    got = cnnc.Model(source=src, seed=2, conv_algo="winograd").run(x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    with pytest.raises(cnnc.Error, match="unknown conv_algo"):
        cnnc.Model(source=src, conv_algo="fast")


def test_denormals_flushed_unless_kept():
    src = "network t { input x[64]; output y = x -> dense(8, bias=false); }"
    x = np.full((4, 64), 1e-39, dtype=np.float32)  # denormal inputs, read as 0 when flushed
    assert not cnnc.Model(source=src, seed=1).run(x).any()
    kept = cnnc.Model(source=src, seed=1, keep_denormals=True).run(x)
    assert np.count_nonzero(kept) == kept.size and np.abs(kept).max() < 1.2e-38


def test_errors_carry_the_library_message(root, tmp_path):
    with pytest.raises(cnnc.Error, match="unknown layer 'foo'"):
        cnnc.Model(source="network x { input a[4]; output b = a -> foo; }")
    with pytest.raises(cnnc.Error, match="nowhere.cnn"):
        cnnc.Model(str(tmp_path / "nowhere.cnn"))
    m = lenet(root)
    with pytest.raises(cnnc.Error, match="missing.safetensors"):
        m.load_weights(tmp_path / "missing.safetensors")
    with pytest.raises(cnnc.Error, match="does not fit"):
        m.run(np.zeros((2, 3, 28, 28), np.float32))
    with pytest.raises(cnnc.Error) as e:
        m.train(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_training_lowers_the_loss(root, data_dir):
    m = lenet(root)
    before = m.evaluate(data_dir)
    assert before["count"] == 10000
    steps, epochs = [], []
    r = m.train(data_dir, steps=30, test=False, on_step=lambda i: steps.append(i["loss"]),
                on_epoch=lambda i: epochs.append(i))
    assert r["steps"] == 30 and len(steps) == 30 and len(epochs) == 1 and not r["stopped"]
    after = m.evaluate(data_dir)
    assert after["loss"] < before["loss"] - 0.1, (before, after)


def test_callback_stops_and_raises(root, data_dir):
    m = lenet(root)
    r = m.train(data_dir, steps=50, test=False, on_step=lambda i: i["step"] >= 3)
    assert r["stopped"] and r["steps"] == 3

    def boom(info):
        raise ValueError("from the callback")
    with pytest.raises(ValueError, match="from the callback"):
        m.train(data_dir, steps=5, test=False, on_step=boom)
