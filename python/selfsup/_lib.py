"""ctypes binding of libselfsup: loading, status -> exception, call table.

Every loss has the same C shape (include/selfsup.h):

    ss_<loss>_cache_size(<cache sizes>)
    ss_<loss>_forward(loss, losses, cache, <args>, opts)
    ss_<loss>_backward(<grads>, dloss, cache, <args>, opts)

so a loss is one LOSSES entry: its options struct, the kinds of <args>, the
names of <grads> and which of <args> size the cache. Call runs one
forward/backward pair on NumPy arrays.
"""
import ctypes
import ctypes.util
import os

import numpy as np

# Absolute library directory recorded by `make install` (None in a checkout).
try:
    from ._install import LIBDIR as _INSTALL_LIBDIR
except ImportError:  # running from the source tree
    _INSTALL_LIBDIR = None


# ---- loading -----------------------------------------------------------------

def _candidates():
    env = os.environ.get("SELFSUP_LIB")
    if env:
        yield env
        return  # an explicit choice must not silently fall back
    if _INSTALL_LIBDIR:
        yield os.path.join(_INSTALL_LIBDIR, "libselfsup.so.0")
        yield os.path.join(_INSTALL_LIBDIR, "libselfsup.so")
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "..", "..", "build", "libselfsup.so")  # checkout
    found = ctypes.util.find_library("selfsup")
    if found:
        yield found


def _load():
    tried = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError(
        "selfsup: cannot load libselfsup.so; set SELFSUP_LIB to its path. "
        "Tried: " + ("; ".join(tried) if tried else "nothing found"))


lib = _load()
lib.ss_last_error.restype = ctypes.c_char_p
lib.ss_status_name.restype = ctypes.c_char_p
lib.ss_status_name.argtypes = [ctypes.c_int]
lib.ss_version.restype = ctypes.c_char_p
lib.ss_build_info.restype = ctypes.c_char_p
lib.ss_set_num_threads.argtypes = [ctypes.c_int]


# ---- status -> exception ---------------------------------------------------------

class SelfsupError(Exception):
    """Base of every selfsup exception; .status is the C status name."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


class SelfsupValueError(SelfsupError, ValueError):
    pass


class SelfsupMemoryError(SelfsupError, MemoryError):
    pass


class SelfsupOSError(SelfsupError, OSError):
    def __init__(self, message, status):  # OSError's own __init__ is positional
        OSError.__init__(self, message)
        self.status = status

    def __str__(self):
        return self.args[0]


class SelfsupStateError(SelfsupError, RuntimeError):
    pass


class SelfsupUnsupportedError(SelfsupError, NotImplementedError):
    pass


_ERRORS = {
    1: SelfsupValueError,   # SS_ERR_NULL
    2: SelfsupValueError,   # SS_ERR_SIZE
    3: SelfsupValueError,   # SS_ERR_PARAM
    4: SelfsupValueError,   # SS_ERR_NONFINITE
    5: SelfsupValueError,   # SS_ERR_LABEL
    6: SelfsupMemoryError,  # SS_ERR_NOMEM
    7: SelfsupOSError,      # SS_ERR_IO
    8: SelfsupValueError,   # SS_ERR_FORMAT
    9: SelfsupStateError,   # SS_ERR_STATE
    10: SelfsupUnsupportedError,  # SS_ERR_UNSUPPORTED
}


def check(status):
    """Raises the exception for a non-zero ss_status, with ss_last_error()."""
    if status == 0:
        return
    msg = lib.ss_last_error().decode("utf-8", "replace")
    name = lib.ss_status_name(status).decode()
    raise _ERRORS.get(status, SelfsupError)("%s (%s)" % (msg, name), name)


# ---- option structs (field order = include/selfsup.h) -----------------------------

def _struct(name, fields):
    return type(name, (ctypes.Structure,), {"_fields_": fields})


F, I, L = ctypes.c_float, ctypes.c_int, ctypes.c_int64
NtxentOpts = _struct("NtxentOpts", [("temperature", F), ("cosine", I),
                                    ("hard_beta", F), ("debias_tau_plus", F)])
SupconOpts = _struct("SupconOpts", [("temperature", F), ("cosine", I)])
MocoOpts = _struct("MocoOpts", [("temperature", F), ("cosine", I)])
ClipOpts = _struct("ClipOpts", [("cosine", I)])
SiglipOpts = _struct("SiglipOpts", [("cosine", I)])
DclOpts = _struct("DclOpts", [("temperature", F), ("weighted", I), ("sigma", F),
                              ("cosine", I), ("joint_negatives", I)])
DinoOpts = _struct("DinoOpts", [("student_temp", F), ("teacher_temp", F),
                                ("warmup_teacher_temp", F),
                                ("warmup_teacher_temp_epochs", L),
                                ("center_momentum", F)])
IbotOpts = _struct("IbotOpts", [("teacher_temp", F), ("student_temp", F),
                                ("center_momentum", F)])
SwavOpts = _struct("SwavOpts", [("temperature", F), ("sinkhorn_iterations", L),
                                ("sinkhorn_epsilon", F)])
MsnOpts = _struct("MsnOpts", [("temperature", F), ("sharpen_temperature", F),
                              ("sinkhorn_iterations", L),
                              ("regularization_weight", F), ("prior", I),
                              ("power_law_exponent", F)])


# ---- the loss table ------------------------------------------------------------------
# Argument kinds: "f" const float *, "i" const int64_t *, "u8" const uint8_t *,
# "obj" a C object pointer, "sf" float scalar, "n" int64_t size.

class Spec:
    def __init__(self, name, opts, args, grads, cache_args, defaults=None):
        self.name = name
        self.opts = opts
        self.args = [a.split(":") for a in args.split()]  # [(name, kind)]
        self.arg_names = [a for a, _ in self.args]
        self.grads = grads.split()
        self.cache_args = cache_args.split()
        self.defaults = defaults or ["ss_%s_defaults" % name]


LOSSES = {s.name: s for s in [
    Spec("ntxent", NtxentOpts, "z:f V:n N:n D:n", "z", "V N D"),
    Spec("supcon", SupconOpts, "z:f labels:i V:n N:n D:n", "z", "V N D"),
    Spec("dcl", DclOpts, "z:f V:n N:n D:n", "z", "V N D",
         ["ss_dcl_defaults", "ss_dclw_defaults"]),
    Spec("moco", MocoOpts, "q:f k:f queue:f N:n K:n D:n", "q k", "N K D"),
    Spec("clip", ClipOpts, "a:f b:f log_scale:sf N:n D:n",
         "a b log_scale", "N D"),
    Spec("siglip", SiglipOpts, "a:f b:f log_t:sf bias:sf N:n D:n",
         "a b log_t bias", "N D"),
    Spec("dino", DinoOpts,
         "teacher:f student:f center:obj teacher_temp:sf G:n V:n N:n K:n",
         "student", "G V N K"),
    Spec("ibot", IbotOpts,
         "teacher:f student:f mask:u8 center:obj B:n T:n M:n K:n",
         "student", "M K"),
    Spec("swav", SwavOpts,
         "high:f low:f queue:f H:n L:n N:n Q:n K:n", "high low", "H L N Q K"),
    Spec("msn", MsnOpts,
         "anchors:f targets:f prototypes:f V:n N:n K:n D:n",
         "anchors prototypes", "V N K D",
         ["ss_msn_defaults", "ss_pmsn_defaults"]),
]}

_CTYPE = {"f": ctypes.c_void_p, "i": ctypes.c_void_p, "u8": ctypes.c_void_p,
          "obj": ctypes.c_void_p, "sf": ctypes.c_float, "n": ctypes.c_int64}
_DTYPE = {"f": np.float32, "i": np.int64, "u8": np.uint8}


def _register(spec):
    n = spec.name
    kinds = [_CTYPE[k] for _, k in spec.args]
    opts_p = ctypes.POINTER(spec.opts)
    fwd = getattr(lib, "ss_%s_forward" % n)
    fwd.argtypes = [ctypes.c_void_p] * 3 + kinds + [opts_p]
    fwd.restype = ctypes.c_int
    bwd = getattr(lib, "ss_%s_backward" % n)
    bwd.argtypes = ([ctypes.c_void_p] * len(spec.grads)
                    + [ctypes.c_float, ctypes.c_void_p] + kinds + [opts_p])
    bwd.restype = ctypes.c_int
    cs = getattr(lib, "ss_%s_cache_size" % n)
    cs.argtypes = [ctypes.c_int64] * len(spec.cache_args)
    cs.restype = ctypes.c_size_t
    for d in spec.defaults:
        getattr(lib, d).restype = spec.opts
        getattr(lib, d).argtypes = []


for _s in LOSSES.values():
    _register(_s)


def make_opts(name, variant=0, **fields):
    """The C defaults of LOSSES[name] (variant picks e.g. DCLW), then fields."""
    spec = LOSSES[name]
    opts = getattr(lib, spec.defaults[variant])()
    for key, value in fields.items():
        if value is not None:
            setattr(opts, key, value)
    return opts


def as_array(x, kind="f"):
    """x as a C-contiguous array of the kind's dtype; no copy when it already
    is one (float32 C-contiguous arrays pass straight through)."""
    return np.ascontiguousarray(x, dtype=_DTYPE[kind])


class Call:
    """One forward/backward pair of LOSSES[name] on fixed inputs.

    values maps every argument name of the spec to its value: an array for
    "f"/"i"/"u8" (None allowed where C allows NULL), an int address for
    "obj", a number for scalars and sizes. The arrays are kept referenced
    (the C side holds raw pointers) and must not change between forward and
    backward."""

    def __init__(self, name, values, opts):
        self.spec = spec = LOSSES[name]
        self.values = values
        self.opts = opts
        self._fwd = getattr(lib, "ss_%s_forward" % name)
        self._bwd = getattr(lib, "ss_%s_backward" % name)
        nbytes = getattr(lib, "ss_%s_cache_size" % name)(
            *[values[a] for a in spec.cache_args])
        if nbytes == 0:  # invalid sizes; ss_last_error says which
            check(2)  # SS_ERR_SIZE
        self.cache = np.empty(nbytes, np.uint8)
        self._argv = []
        for arg, kind in spec.args:
            v = values[arg]
            if kind in _DTYPE:
                self._argv.append(None if v is None else v.ctypes.data)
            elif kind == "obj":
                self._argv.append(v)
            elif kind == "sf":
                self._argv.append(float(v))
            else:
                self._argv.append(int(v))

    def forward(self):
        loss = ctypes.c_float()
        check(self._fwd(ctypes.addressof(loss), None, self.cache.ctypes.data,
                        *self._argv, ctypes.byref(self.opts)))
        return loss.value

    def backward(self, dloss, shapes, want=None):
        """Gradients of the inputs named in shapes ({grad name: shape}),
        freshly zeroed then accumulated by C; names not in want (when given)
        are passed as NULL and come back as None."""
        grads = {}
        ptrs = []
        for g in self.spec.grads:
            if g in shapes and (want is None or g in want):
                grads[g] = np.zeros(shapes[g], np.float32)
                ptrs.append(grads[g].ctypes.data)
            else:
                grads[g] = None
                ptrs.append(None)
        check(self._bwd(*ptrs, ctypes.c_float(dloss), self.cache.ctypes.data,
                        *self._argv, ctypes.byref(self.opts)))
        return grads


# ---- C objects: teacher centre ---------------------------------------------------------

lib.ss_center_create.argtypes = [ctypes.c_void_p, ctypes.c_int64]
lib.ss_center_free.argtypes = [ctypes.c_void_p]
lib.ss_center_set.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
lib.ss_center_data.argtypes = [ctypes.c_void_p]
lib.ss_center_data.restype = ctypes.POINTER(ctypes.c_float)
lib.ss_center_dim.argtypes = [ctypes.c_void_p]
lib.ss_center_dim.restype = ctypes.c_int64
lib.ss_center_accumulate.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                     ctypes.c_int64]
lib.ss_center_update.argtypes = [ctypes.c_void_p, ctypes.c_float]
lib.ss_center_save.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.ss_center_load.argtypes = [ctypes.c_void_p, ctypes.c_char_p]

lib.ss_queue_create.argtypes = [ctypes.c_void_p, ctypes.c_int64,
                                ctypes.c_int64, ctypes.c_void_p]
lib.ss_queue_free.argtypes = [ctypes.c_void_p]
lib.ss_queue_enqueue.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_int64]
lib.ss_queue_read.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
lib.ss_queue_data.argtypes = [ctypes.c_void_p]
lib.ss_queue_data.restype = ctypes.c_void_p
for _f in ("len", "dim", "count"):
    getattr(lib, "ss_queue_" + _f).argtypes = [ctypes.c_void_p]
    getattr(lib, "ss_queue_" + _f).restype = ctypes.c_int64
lib.ss_queue_save.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.ss_queue_load.argtypes = [ctypes.c_void_p, ctypes.c_char_p]


class RNG(ctypes.Structure):
    _fields_ = [("s", ctypes.c_uint64 * 4)]


lib.ss_rng_seed.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
lib.ss_rng_seed.restype = None
