"""cnnc: compile, run and train .cnn networks from Python (ctypes over libcnn.so, numpy arrays).

    import numpy as np, cnnc
    m = cnnc.Model("examples/lenet5.cnn")          # fresh weights from seed 0
    y = m.run(np.zeros((8, *m.inputs[0]), np.float32))
    m.train("/usr/share/datasets/fashion-mnist", steps=100, on_epoch=print)
    m.save_weights("lenet5.safetensors")

The library is found through $CNNC_LIB (a path to libcnn.so.0), else next to this package
or where `meson install` put it, else through the dynamic loader.  Every failure raises
cnnc.Error with the library's message.
"""
import ctypes as C
import os

import numpy as np

__all__ = ["Model", "Weights", "Error", "version", "build_id"]

_BACKENDS = {"auto": 0, "ref": 1, "native": 2, "onednn": 3}
_PRECISIONS = {"fp32": 0, "bf16": 1, "int8": 2}
_TUNES = {"off": 0, "on": 1, "exhaustive": 2}
_CONV_ALGOS = {"default": 0, "direct": 1, "winograd": 2, "auto": 3}


class Error(Exception):
    """A failed library call; str(e) is the library's message, e.status its cnn_status."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


def _load():
    names = []
    if os.environ.get("CNNC_LIB"):
        names.append(os.environ["CNNC_LIB"])
    here = os.path.dirname(os.path.abspath(__file__))
    names.append(os.path.join(here, "libcnn.so.0"))
    try:
        from . import _paths
        names.append(os.path.join(_paths.LIBDIR, "libcnn.so.0"))
    except ImportError:
        pass
    names.append("libcnn.so.0")
    errors = []
    for n in names:
        if os.path.sep in n and not os.path.exists(n):
            continue
        try:
            return C.CDLL(n)
        except OSError as e:
            errors.append(str(e))
    raise ImportError("cnnc: cannot load libcnn.so.0 (set CNNC_LIB to its path): " + "; ".join(errors))


_lib = _load()
_P = C.c_void_p
_i64p = C.POINTER(C.c_int64)
_f32p = C.POINTER(C.c_float)


class _Options(C.Structure):
    _fields_ = [("passes", C.c_uint), ("backend", C.c_int), ("threads", C.c_int), ("seed", C.c_uint64),
                ("precision", C.c_int), ("tune", C.c_int), ("tune_cache", C.c_char_p), ("conv_algo", C.c_int),
                ("keep_denormals", C.c_bool)]


class _AugmentStep(C.Structure):
    _fields_ = [("kind", C.c_int), ("pad", C.c_int64)]


class _TrainConfig(C.Structure):
    # cnn_train_config of cnn.h, field for field (CNN_MAX_AUGMENT 8, CNN_MAX_NORMALIZE 16)
    _fields_ = [("loss", C.c_int), ("optimizer", C.c_int), ("lr", C.c_double), ("momentum", C.c_double),
                ("weight_decay", C.c_double), ("beta1", C.c_double), ("beta2", C.c_double),
                ("eps", C.c_double), ("nesterov", C.c_bool), ("batch", C.c_int64), ("epochs", C.c_int64),
                ("label_smoothing", C.c_double), ("schedule", C.c_int), ("schedule_every", C.c_int64),
                ("schedule_gamma", C.c_double), ("warmup_epochs", C.c_double), ("clip_grad_norm", C.c_double),
                ("naugment", C.c_int), ("augment", _AugmentStep * 8), ("nnormalize", C.c_int),
                ("mean", C.c_double * 16), ("std", C.c_double * 16)]

    def as_dict(self):
        d = {n: getattr(self, n) for n, _ in self._fields_ if n not in ("augment", "mean", "std")}
        d["augment"] = [(self.augment[i].kind, self.augment[i].pad) for i in range(min(self.naugment, 8))]
        d["mean"] = list(self.mean[:min(self.nnormalize, 16)])
        d["std"] = list(self.std[:min(self.nnormalize, 16)])
        return d


class _StepInfo(C.Structure):
    _fields_ = [(n, C.c_int64) for n in ("step", "epoch", "epochs", "epoch_step", "steps_per_epoch", "run_steps",
                                         "call_steps", "batch")] + \
               [(n, C.c_double) for n in ("lr", "loss", "accuracy", "epoch_loss", "epoch_accuracy", "images_per_s",
                                          "seconds", "call_seconds", "wall_seconds")]


class _EpochInfo(C.Structure):
    _fields_ = [(n, C.c_int64) for n in ("epoch", "epochs", "steps", "total_steps")] + \
               [(n, C.c_double) for n in ("lr", "train_loss", "train_accuracy", "images_per_s", "seconds",
                                          "wall_seconds")] + \
               [("has_val", C.c_bool), ("val_loss", C.c_double), ("val_accuracy", C.c_double),
                ("has_test", C.c_bool), ("test_loss", C.c_double), ("test_accuracy", C.c_double),
                ("improved", C.c_bool), ("best_epoch", C.c_int64), ("best_accuracy", C.c_double),
                ("epochs_without_improvement", C.c_int64), ("early_stop", C.c_bool), ("checkpointed", C.c_bool),
                ("warning", C.c_char_p)]


_STEP_FN = C.CFUNCTYPE(C.c_int, C.POINTER(_StepInfo), C.c_void_p)
_EPOCH_FN = C.CFUNCTYPE(C.c_int, C.POINTER(_EpochInfo), C.c_void_p)


class _TrainOptions(C.Structure):
    _fields_ = [("epochs", C.c_int64), ("max_steps", C.c_int64), ("shuffle", C.c_bool), ("seed", C.c_uint64),
                ("eval_batch", C.c_int64), ("val", C.c_int64), ("patience", C.c_int64),
                ("checkpoint_dir", C.c_char_p), ("resume", C.c_char_p),
                ("on_step", _STEP_FN), ("on_epoch", _EPOCH_FN), ("user", C.c_void_p)]


class _TrainResult(C.Structure):
    _fields_ = [("steps", C.c_int64), ("epochs", C.c_int64), ("resumed_step", C.c_int64), ("stopped", C.c_bool),
                ("early_stopped", C.c_bool), ("restored_best", C.c_bool),
                ("train_loss", C.c_double), ("train_accuracy", C.c_double),
                ("has_val", C.c_bool), ("val_loss", C.c_double), ("val_accuracy", C.c_double),
                ("has_test", C.c_bool), ("test_loss", C.c_double), ("test_accuracy", C.c_double),
                ("best_epoch", C.c_int64), ("best_accuracy", C.c_double), ("seconds", C.c_double)]


class _EvalResult(C.Structure):
    _fields_ = [("loss", C.c_double), ("accuracy", C.c_double), ("count", C.c_int64)]


def _sig(name, res, *args):
    f = getattr(_lib, name)
    f.restype, f.argtypes = res, list(args)


_sig("cnn_version", C.c_char_p)
_sig("cnn_build_id", C.c_char_p)
_sig("cnn_options_default", None, C.POINTER(_Options))
_sig("cnn_model_load", C.c_int, C.POINTER(_P), C.c_char_p, C.c_char_p)
_sig("cnn_model_compile", C.c_int, C.POINTER(_P), C.c_char_p, C.c_char_p, C.c_size_t, C.c_char_p)
_sig("cnn_model_destroy", None, _P)
_sig("cnn_model_errmsg", C.c_char_p, _P)
_sig("cnn_model_name", C.c_char_p, _P)
for _io in ("input", "output"):
    _sig("cnn_model_%s_count" % _io, C.c_int, _P)
    _sig("cnn_model_%s_shape" % _io, C.c_int, _P, C.c_int, _i64p)
    _sig("cnn_model_%s_name" % _io, C.c_char_p, _P, C.c_int)
_sig("cnn_model_train_config", None, _P, C.POINTER(_TrainConfig))
_sig("cnn_model_summary", C.c_int, _P, C.POINTER(_Options), C.c_int64, C.c_bool, C.POINTER(C.c_void_p))
_sig("cnn_free", None, C.c_void_p)
_sig("cnn_weights_create", C.c_int, C.POINTER(_P), _P, C.c_uint64)
_sig("cnn_weights_destroy", None, _P)
_sig("cnn_weights_errmsg", C.c_char_p, _P)
_sig("cnn_weights_load", C.c_int, _P, C.c_char_p, C.c_bool)
_sig("cnn_weights_save", C.c_int, _P, C.c_char_p)
_sig("cnn_weights_count", C.c_int, _P)
_sig("cnn_weights_tensor", _f32p, _P, C.c_int, C.POINTER(C.c_char_p), C.POINTER(C.c_int), _i64p)
_sig("cnn_session_create", C.c_int, C.POINTER(_P), _P, _P, C.POINTER(_Options), C.c_int64, C.c_int,
     C.POINTER(_TrainConfig))
_sig("cnn_session_destroy", None, _P)
_sig("cnn_session_errmsg", C.c_char_p, _P)
_sig("cnn_session_input", _f32p, _P, C.c_int)
_sig("cnn_session_output", _f32p, _P, C.c_int)
_sig("cnn_session_run", C.c_int, _P)
_sig("cnn_dataset_load", C.c_int, C.POINTER(_P), C.c_char_p, C.c_char_p, C.POINTER(C.c_bool), C.c_char_p,
     C.c_size_t)
_sig("cnn_dataset_destroy", None, _P)
_sig("cnn_dataset_check", C.c_int, _P, _P, C.c_char_p, C.c_size_t)
_sig("cnn_evaluate", C.c_int, _P, _P, C.c_int, C.POINTER(_EvalResult))
_sig("cnn_train_options_default", None, C.POINTER(_TrainOptions))
_sig("cnn_train", C.c_int, _P, _P, _P, C.POINTER(_TrainOptions), C.POINTER(_TrainResult))


def version():
    return _lib.cnn_version().decode()


def build_id():
    """The commit the library was built from (git describe), or "" outside a git checkout."""
    return _lib.cnn_build_id().decode()


def _b(s):
    return None if s is None else os.fsencode(s)


def _msg(p):
    return p.decode(errors="replace") if p else "unknown error"


class _Dataset:
    def __init__(self, path, split, optional=False):
        self.h = _P()
        absent = C.c_bool(False)
        err = C.create_string_buffer(1024)
        st = _lib.cnn_dataset_load(C.byref(self.h), _b(path), split.encode(), C.byref(absent), err, 1024)
        self.absent = st != 0 and absent.value and optional
        if st != 0 and not self.absent:
            raise Error(_msg(err.value), st)

    def __del__(self):
        if getattr(self, "h", None):
            _lib.cnn_dataset_destroy(self.h)


class _ModelHandle:
    """Owns a cnn_model; the Model and its Weights both hold it, so it outlives them."""

    def __init__(self, h):
        self.h = h

    def __del__(self):
        _lib.cnn_model_destroy(self.h)


class Weights:
    """The weights of a Model: a mapping from tensor names to read-only numpy arrays that are
    views of the library's own buffers (no copies)."""

    def __init__(self, model, seed=0):
        self._mh = model._mh  # the model must outlive the weights
        self.h = _P()
        st = _lib.cnn_weights_create(C.byref(self.h), self._mh.h, seed)
        if st != 0:
            raise Error(_msg(_lib.cnn_weights_errmsg(self.h)), st)

    def __del__(self):
        if getattr(self, "h", None):
            _lib.cnn_weights_destroy(self.h)

    def _check(self, st):
        if st != 0:
            raise Error(_msg(_lib.cnn_weights_errmsg(self.h)), st)

    def load(self, path, allow_extra=False):
        self._check(_lib.cnn_weights_load(self.h, _b(path), allow_extra))

    def save(self, path):
        self._check(_lib.cnn_weights_save(self.h, _b(path)))

    def _tensor(self, i):
        name, rank, dims = C.c_char_p(), C.c_int(), (C.c_int64 * 5)()
        p = _lib.cnn_weights_tensor(self.h, i, C.byref(name), C.byref(rank), dims)
        a = np.ctypeslib.as_array(p, shape=tuple(dims[:rank.value]) or (1,))
        a.flags.writeable = False  # sessions cache derived constants (folded batchnorm, reorders)
        return name.value.decode(), a

    def __len__(self):
        return _lib.cnn_weights_count(self.h)

    def keys(self):
        return [self._tensor(i)[0] for i in range(len(self))]

    def items(self):
        return [self._tensor(i) for i in range(len(self))]

    def __iter__(self):
        return iter(self.keys())

    def __getitem__(self, key):
        for n, a in self.items():
            if n == key:
                return a
        raise KeyError(key)


class Model:
    """A compiled network with its weights (fresh from `seed`, or loaded with load_weights).

    path: a .cnn file (or source=TEXT to compile a string); network: which network of the file.
    backend: "auto", "ref", "native" or "onednn"; threads: 0 for all cores.
    precision: "fp32", "bf16" or "int8" for inference (int8 needs weights with the scales that
    `cnnc quantize` writes, loaded with load_weights); training is always fp32.
    tune: "off", "on" or "exhaustive": backend auto picks each node's backend by measurement,
    cached in tune_cache (None: the default file; see docs/commands.md, "Tuning").
    conv_algo: "default" (direct, or auto when tuning), "direct", "winograd" or "auto": how fp32
    3x3 stride-1 convolutions are computed (docs/commands.md, "Winograd convolutions").
    keep_denormals: compute with denormal floats instead of flushing them to zero during runs
    (docs/choices.md, "Denormals")."""

    _sessions = {}

    def __init__(self, path=None, network=None, *, source=None, seed=0, backend="auto", threads=0, opt_level=2,
                 precision="fp32", tune="off", tune_cache=None, conv_algo="default", keep_denormals=False):
        self.h = _P()
        if source is not None:
            data = source.encode()
            st = _lib.cnn_model_compile(C.byref(self.h), _b(path or "<string>"), data, len(data), _b(network))
        else:
            st = _lib.cnn_model_load(C.byref(self.h), _b(path), _b(network))
        if st != 0:
            msg = _msg(_lib.cnn_model_errmsg(self.h))
            _lib.cnn_model_destroy(self.h)
            raise Error(msg, st)
        self._mh = _ModelHandle(self.h)
        self._opt = _Options()
        _lib.cnn_options_default(C.byref(self._opt))
        if backend not in _BACKENDS:
            raise Error("unknown backend %r (one of %s)" % (backend, ", ".join(_BACKENDS)), 2)
        self._opt.backend = _BACKENDS[backend]
        if precision not in _PRECISIONS:
            raise Error("unknown precision %r (one of %s)" % (precision, ", ".join(_PRECISIONS)), 2)
        self._opt.precision = _PRECISIONS[precision]
        if tune not in _TUNES:
            raise Error("unknown tune %r (one of %s)" % (tune, ", ".join(_TUNES)), 2)
        self._opt.tune = _TUNES[tune]
        if conv_algo not in _CONV_ALGOS:
            raise Error("unknown conv_algo %r (one of %s)" % (conv_algo, ", ".join(_CONV_ALGOS)), 2)
        self._opt.conv_algo = _CONV_ALGOS[conv_algo]
        self._opt.keep_denormals = bool(keep_denormals)
        self._tune_cache = _b(tune_cache)  # kept alive as long as the options point at it
        self._opt.tune_cache = self._tune_cache
        self._opt.threads = threads
        self._opt.seed = seed
        if opt_level == 0:
            self._opt.passes = 0
        elif opt_level == 1:
            self._opt.passes = 1 | 2
        self.weights = Weights(self, seed)
        self._sessions = {}

    def __del__(self):
        for s in getattr(self, "_sessions", {}).values():
            _lib.cnn_session_destroy(s)
        self._sessions = {}

    @property
    def name(self):
        return _lib.cnn_model_name(self.h).decode()

    def _shapes(self, io):
        out = []
        for i in range(getattr(_lib, "cnn_model_%s_count" % io)(self.h)):
            dims = (C.c_int64 * 4)()
            r = getattr(_lib, "cnn_model_%s_shape" % io)(self.h, i, dims)
            out.append(tuple(dims[:r]))
        return out

    def _names(self, io):
        f = getattr(_lib, "cnn_model_%s_name" % io)
        return [f(self.h, i).decode() for i in range(getattr(_lib, "cnn_model_%s_count" % io)(self.h))]

    @property
    def inputs(self):
        """The shape of one example of each input (no batch axis)."""
        return self._shapes("input")

    @property
    def outputs(self):
        return self._shapes("output")

    @property
    def input_names(self):
        return self._names("input")

    @property
    def output_names(self):
        return self._names("output")

    @property
    def train_config(self):
        c = _TrainConfig()
        _lib.cnn_model_train_config(self.h, C.byref(c))
        return c.as_dict()

    def summary(self, batch=1, training=False):
        p = C.c_void_p()
        st = _lib.cnn_model_summary(self.h, C.byref(self._opt), batch, training, C.byref(p))
        if st != 0:
            raise Error(_msg(_lib.cnn_model_errmsg(self.h)), st)
        try:
            return C.string_at(p).decode()
        finally:
            _lib.cnn_free(p)

    def load_weights(self, path, allow_extra=False):
        self.weights.load(path, allow_extra)

    def save_weights(self, path):
        self.weights.save(path)

    def _session(self, batch, mode=0, cfg=None):
        s = _P()
        st = _lib.cnn_session_create(C.byref(s), self.h, self.weights.h, C.byref(self._opt), batch, mode,
                                     C.byref(cfg) if cfg is not None else None)
        if st != 0:
            msg = _msg(_lib.cnn_session_errmsg(s))
            _lib.cnn_session_destroy(s)
            raise Error(msg, st)
        return s

    def run(self, *xs):
        """Inference on a batch: one array per input, shaped [N, *input shape] (float32; other
        dtypes are converted).  Returns the output as a new float32 array [N, *output shape],
        or a tuple of them when the network has several outputs."""
        shapes = self.inputs
        if len(xs) != len(shapes):
            raise Error("the network has %d input(s); run() was given %d" % (len(shapes), len(xs)), 2)
        xs = [np.ascontiguousarray(x, dtype=np.float32) for x in xs]
        n = xs[0].shape[0] if xs[0].ndim else 0
        for i, (x, shp) in enumerate(zip(xs, shapes)):
            if x.shape[1:] != shp or x.ndim == 0 or x.shape[0] != n or n < 1:
                raise Error("input %d: shape %s does not fit the network's input %s: expected [N, %s]"
                            % (i, list(x.shape), list(shp), ", ".join(map(str, shp))), 1)
        s = self._sessions.get(n)
        if s is None:
            s = self._sessions[n] = self._session(n)
        for i, x in enumerate(xs):
            C.memmove(_lib.cnn_session_input(s, i), x.ctypes.data, x.nbytes)
        st = _lib.cnn_session_run(s)
        if st != 0:
            raise Error(_msg(_lib.cnn_session_errmsg(s)), st)
        # a copy: the session's output buffer is part of its arena and the next run overwrites it
        ys = [np.ctypeslib.as_array(_lib.cnn_session_output(s, o), shape=(n,) + shp).copy()
              for o, shp in enumerate(self.outputs)]
        return ys[0] if len(ys) == 1 else tuple(ys)

    def train(self, data_dir, epochs=None, steps=0, batch=None, lr=None, shuffle=True, seed=None,
              test=True, on_step=None, on_epoch=None, val=0, patience=0, checkpoint=None, resume=None):
        """Trains the weights in place on the IDX folder data_dir with cnn_train (the network's
        train section gives the defaults).  steps: stop after that many optimiser steps.  val:
        hold out the last val examples; patience: stop after that many epochs without a better
        validation (else test) accuracy, ending with the best weights; checkpoint: a folder for
        last.safetensors and best.safetensors; resume: a checkpoint to continue exactly.  The
        callbacks get a dict per step / per epoch and may return True to stop.  Returns a dict
        (steps, epochs, stopped, train_loss, train_accuracy, val_*, test_*, best_epoch, seconds...)."""
        tr = _Dataset(data_dir, "train")
        te = _Dataset(data_dir, "test", optional=True) if test else None
        if te is not None and te.absent:
            te = None
        err = C.create_string_buffer(1024)
        st = _lib.cnn_dataset_check(tr.h, self.h, err, 1024)
        if st != 0:
            raise Error(_msg(err.value), st)
        cfg = _TrainConfig()
        _lib.cnn_model_train_config(self.h, C.byref(cfg))
        if batch:
            cfg.batch = batch
        if lr is not None:
            cfg.lr = lr
        o = _TrainOptions()
        _lib.cnn_train_options_default(C.byref(o))
        o.epochs = epochs or 0
        o.max_steps = steps or 0
        o.shuffle = shuffle
        o.seed = self._opt.seed if seed is None else seed
        o.val = val
        o.patience = patience
        keep = [os.fsencode(p) if p is not None else None for p in (checkpoint, resume)]
        o.checkpoint_dir, o.resume = keep
        raised = []

        def wrap(fn, kind):
            def cb(info, user):
                try:
                    i = info.contents
                    return 1 if fn({n: getattr(i, n) for n, _ in i._fields_}) else 0
                except BaseException as e:  # noqa: B036 - re-raised after cnn_train returns
                    raised.append(e)
                    return 1
            return kind(cb)

        if on_step:
            o.on_step = wrap(on_step, _STEP_FN)
        if on_epoch:
            o.on_epoch = wrap(on_epoch, _EPOCH_FN)
        s = self._session(cfg.batch, 1, cfg)
        try:
            r = _TrainResult()
            st = _lib.cnn_train(s, tr.h, te.h if te else None, C.byref(o), C.byref(r))
            if raised:
                raise raised[0]
            if st != 0:
                raise Error(_msg(_lib.cnn_session_errmsg(s)), st)
        finally:
            _lib.cnn_session_destroy(s)
        res = {n: getattr(r, n) for n, _ in r._fields_}
        if not r.has_test:
            res.pop("test_loss"), res.pop("test_accuracy")
        if not r.has_val:
            res.pop("val_loss"), res.pop("val_accuracy")
        return res

    def evaluate(self, data_dir, batch=256, split="test"):
        """Mean loss and top-1 accuracy over a split of an IDX folder: a dict (loss, accuracy, count)."""
        d = _Dataset(data_dir, split)
        err = C.create_string_buffer(1024)
        st = _lib.cnn_dataset_check(d.h, self.h, err, 1024)
        if st != 0:
            raise Error(_msg(err.value), st)
        s = self._session(batch)
        try:
            r = _EvalResult()
            st = _lib.cnn_evaluate(s, d.h, self.train_config["loss"], C.byref(r))
            if st != 0:
                raise Error(_msg(_lib.cnn_session_errmsg(s)), st)
        finally:
            _lib.cnn_session_destroy(s)
        return {"loss": r.loss, "accuracy": r.accuracy, "count": r.count}
