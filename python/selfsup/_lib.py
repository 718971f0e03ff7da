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


# ---- status -> exception ----------------------------------------------------

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


# ---- option structs (field order = include/selfsup.h) -----------------------

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
NegcosOpts = _struct("NegcosOpts", [("eps", F)])
BarlowOpts = _struct("BarlowOpts", [("lambda", F), ("bn_eps", F), ("form", I)])
VicregOpts = _struct("VicregOpts", [("lambda", F), ("mu", F), ("nu", F),
                                    ("eps", F), ("form", I)])
TicoOpts = _struct("TicoOpts", [("beta", F), ("rho", F), ("update", I)])
WmseOpts = _struct("WmseOpts", [("w_size", L), ("w_iter", L), ("eps", F)])
HypersphereOpts = _struct("HypersphereOpts", [("t", F), ("lambda", F),
                                              ("alpha", F)])
KoleoOpts = _struct("KoleoOpts", [("eps", F)])
MmcrOpts = _struct("MmcrOpts", [("lambda", F)])
EmpsslOpts = _struct("EmpsslOpts", [("tcr_eps", F), ("inv_coef", F)])
MlmOpts = _struct("MlmOpts", [("ignore_index", L), ("label_smoothing", F),
                              ("class_weights", ctypes.c_void_p)])
FusedCeOpts = _struct("FusedCeOpts", [("ignore_index", L),
                                      ("label_smoothing", F),
                                      ("class_weights", ctypes.c_void_p),
                                      ("block_bytes", ctypes.c_size_t)])
MaeOpts = _struct("MaeOpts", [("norm_pix", I)])


# ---- the loss table ---------------------------------------------------------
# Argument kinds: "f" const float *, "i" const int64_t *, "u8" const uint8_t *,
# "obj" a C object pointer, "fobj" one passed to forward only, "sf" float
# scalar, "n" int64_t size. losses=False: forward has no per-anchor output;
# cache_opts: cache_size also takes the options; cache=False: no cache at
# all (backward recomputes from the inputs).

class Spec:
    def __init__(self, name, opts, args, grads, cache_args, defaults=None,
                 losses=True, cache_opts=False, cache=True):
        self.name = name
        self.cache = cache
        self.losses = losses
        self.cache_opts = cache_opts
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
    # redundancy reduction
    Spec("negcos", NegcosOpts, "p:f z:f N:n D:n", "p z", "N D"),
    Spec("barlow", BarlowOpts, "a:f b:f N:n D:n", "a b", "N D",
         cache_opts=True),
    Spec("vicreg", VicregOpts, "a:f b:f N:n D:n", "a b", "N D",
         cache_opts=True),
    # geometry
    Spec("tico", TicoOpts, "state:fobj za:f zb:f N:n D:n", "za zb", "N D"),
    Spec("wmse", WmseOpts, "z:f perm:i V:n N:n D:n", "z", "V N D",
         losses=False),
    Spec("hypersphere", HypersphereOpts, "za:f zb:f N:n D:n", "za zb", "N D",
         losses=False),
    Spec("koleo", KoleoOpts, "x:f N:n D:n", "x", "N D"),
    Spec("mmcr", MmcrOpts, "online:f momentum:f B:n K:n D:n",
         "online momentum", "B K D", losses=False),
    Spec("empssl", EmpsslOpts, "z:f V:n N:n D:n", "z", "V N D"),
    # predictive
    Spec("mlm", MlmOpts, "logits:f targets:i T:n V:n", "logits", "T V"),
    Spec("fused_ce", FusedCeOpts,
         "hidden:f weight:f bias:f targets:i T:n H:n V:n",
         "hidden weight bias", "T H V"),
    Spec("mae", MaeOpts, "pred:f imgs:f mask:u8 B:n C:n Hi:n Wi:n p:n",
         "pred", "", cache=False),
]}

_CTYPE = {"f": ctypes.c_void_p, "i": ctypes.c_void_p, "u8": ctypes.c_void_p,
          "obj": ctypes.c_void_p, "fobj": ctypes.c_void_p,
          "sf": ctypes.c_float, "n": ctypes.c_int64}
_DTYPE = {"f": np.float32, "i": np.int64, "u8": np.uint8}


def _register(spec):
    n = spec.name
    kinds = [_CTYPE[k] for _, k in spec.args]
    bkinds = [_CTYPE[k] for _, k in spec.args if k != "fobj"]
    opts_p = ctypes.POINTER(spec.opts)
    fwd = getattr(lib, "ss_%s_forward" % n)
    head = 1 + int(spec.losses) + int(spec.cache)
    fwd.argtypes = [ctypes.c_void_p] * head + kinds + [opts_p]
    fwd.restype = ctypes.c_int
    bwd = getattr(lib, "ss_%s_backward" % n)
    bwd.argtypes = ([ctypes.c_void_p] * len(spec.grads) + [ctypes.c_float]
                    + [ctypes.c_void_p] * int(spec.cache) + bkinds + [opts_p])
    bwd.restype = ctypes.c_int
    if spec.cache:
        cs = getattr(lib, "ss_%s_cache_size" % n)
        cs.argtypes = ([ctypes.c_int64] * len(spec.cache_args)
                       + ([opts_p] if spec.cache_opts else []))
        cs.restype = ctypes.c_size_t
    for d in spec.defaults:
        getattr(lib, d).restype = spec.opts
        getattr(lib, d).argtypes = []


def available(name):
    """Whether the loaded library has loss `name` (losses land over time)."""
    return name in LOSSES and hasattr(lib, "ss_%s_forward" % name)


for _s in LOSSES.values():
    if available(_s.name):
        _register(_s)


def make_opts(name, variant=0, **fields):
    """The C defaults of LOSSES[name] (variant picks e.g. DCLW), then fields."""
    if not available(name):
        raise NotImplementedError(
            "selfsup: the loaded libselfsup (%s) has no ss_%s_forward; "
            "update the library" % (lib._name, name))
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
        self._cache = []
        if spec.cache:
            nbytes = getattr(lib, "ss_%s_cache_size" % name)(
                *[values[a] for a in spec.cache_args],
                *([ctypes.byref(opts)] if spec.cache_opts else []))
            if nbytes == 0:  # invalid sizes; ss_last_error says which
                check(2)  # SS_ERR_SIZE
            self.cache = np.empty(nbytes, np.uint8)
            self._cache = [self.cache.ctypes.data]
        self._argv, self._bargv = [], []
        for arg, kind in spec.args:
            v = values[arg]
            if kind in _DTYPE:
                self._argv.append(None if v is None else v.ctypes.data)
            elif kind in ("obj", "fobj"):
                self._argv.append(v)
            elif kind == "sf":
                self._argv.append(float(v))
            else:
                self._argv.append(int(v))
            if kind != "fobj":
                self._bargv.append(self._argv[-1])

    def forward(self):
        loss = ctypes.c_float()
        head = [ctypes.addressof(loss)] + ([None] if self.spec.losses else [])
        check(self._fwd(*head, *self._cache, *self._argv,
                        ctypes.byref(self.opts)))
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
        check(self._bwd(*ptrs, ctypes.c_float(dloss), *self._cache,
                        *self._bargv, ctypes.byref(self.opts)))
        return grads


# ---- C objects: teacher centre, negative queue, TiCo state ------------------

def _sig(name, argtypes, restype=ctypes.c_int):
    """Declares a C function when the loaded library has it."""
    if hasattr(lib, name):
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, restype


_P, _I64, _S = ctypes.c_void_p, ctypes.c_int64, ctypes.c_char_p
for _obj in ("center", "queue", "tico_state"):
    _sig("ss_%s_free" % _obj, [_P], None)
    _sig("ss_%s_save" % _obj, [_P, _S])
    _sig("ss_%s_load" % _obj, [_P, _S])
_sig("ss_center_create", [_P, _I64])
_sig("ss_center_set", [_P, _P])
_sig("ss_center_data", [_P], ctypes.POINTER(ctypes.c_float))
_sig("ss_center_dim", [_P], _I64)
_sig("ss_center_accumulate", [_P, _P, _I64])
_sig("ss_center_update", [_P, ctypes.c_float])
_sig("ss_queue_create", [_P, _I64, _I64, _P])
_sig("ss_queue_enqueue", [_P, _P, _I64])
_sig("ss_queue_read", [_P, _P])
_sig("ss_queue_data", [_P], _P)
for _f in ("len", "dim", "count"):
    _sig("ss_queue_" + _f, [_P], _I64)
_sig("ss_tico_state_create", [_P, _I64])
_sig("ss_tico_state_dim", [_P], _I64)
_sig("ss_tico_state_steps", [_P], _I64)
_sig("ss_tico_state_read", [_P, _P])
_sig("ss_tico_state_write", [_P, _P])


class RNG(ctypes.Structure):
    _fields_ = [("s", ctypes.c_uint64 * 4)]


lib.ss_rng_seed.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
lib.ss_rng_seed.restype = None
