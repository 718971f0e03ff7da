"""NumPy-level losses: one function per C loss.

Each returns the loss (a float) or, with grad=True, a tuple
(loss, gradient of every differentiable input...). float32 C-contiguous
inputs are passed to C without a copy; anything else is converted first.
Shapes are those of include/selfsup.h (PyTorch order).
"""
import ctypes

import numpy as np

from . import _lib
from ._lib import as_array, check, lib


def _shape(x, ndim, name):
    if x.ndim != ndim:
        raise ValueError("selfsup: %s must have %d dimensions, got shape %s"
                         % (name, ndim, x.shape))
    return x.shape


def _run(name, values, opts, grad_shapes, grad):
    call = _lib.Call(name, values, opts)
    loss = call.forward()
    if not grad:
        return loss
    g = call.backward(1.0, grad_shapes)
    return (loss,) + tuple(g[k] for k in grad_shapes)


# ---- contrastive family -----------------------------------------------------

def ntxent(z, temperature=0.5, cosine=True, hard_beta=0.0,
           debias_tau_plus=0.0, grad=False):
    """NT-Xent over z: (V, N, D), V >= 2 views. Returns loss or (loss, dz)."""
    z = as_array(z)
    V, N, D = _shape(z, 3, "z")
    opts = _lib.make_opts("ntxent", temperature=temperature, cosine=int(cosine),
                          hard_beta=hard_beta, debias_tau_plus=debias_tau_plus)
    return _run("ntxent", dict(z=z, V=V, N=N, D=D), opts, {"z": z.shape}, grad)


def supcon(z, labels, temperature=0.1, cosine=True, grad=False):
    """SupCon over z: (V, N, D) with labels: (N) int (-1 = unlabeled)."""
    z, labels = as_array(z), as_array(labels, "i")
    V, N, D = _shape(z, 3, "z")
    if labels.shape != (N,):
        raise ValueError("selfsup: labels must have shape (%d,), got %s"
                         % (N, labels.shape))
    opts = _lib.make_opts("supcon", temperature=temperature, cosine=int(cosine))
    return _run("supcon", dict(z=z, labels=labels, V=V, N=N, D=D), opts,
                {"z": z.shape}, grad)


def dcl(z, temperature=0.1, cosine=True, joint_negatives=False, grad=False):
    """DCL (lightly DCLLoss) over z: (V, N, D)."""
    return _dcl(z, 0, grad, temperature=temperature, cosine=int(cosine),
                joint_negatives=int(joint_negatives))


def dclw(z, temperature=0.1, sigma=0.5, cosine=True, joint_negatives=False,
         grad=False):
    """DCLW (lightly DCLWLoss) over z: (2, N, D)."""
    return _dcl(z, 1, grad, temperature=temperature, sigma=sigma,
                cosine=int(cosine), joint_negatives=int(joint_negatives))


def _dcl(z, variant, grad, **fields):
    z = as_array(z)
    V, N, D = _shape(z, 3, "z")
    opts = _lib.make_opts("dcl", variant, **fields)
    return _run("dcl", dict(z=z, V=V, N=N, D=D), opts, {"z": z.shape}, grad)


def moco(q, k, queue, temperature=0.5, cosine=True, grad=False):
    """InfoNCE of queries q: (N, D) against keys k: (N, D) and a negative
    queue: (K, D). Returns loss or (loss, dq, dk)."""
    q, k, queue = as_array(q), as_array(k), as_array(queue)
    N, D = _shape(q, 2, "q")
    K = _shape(queue, 2, "queue")[0]
    opts = _lib.make_opts("moco", temperature=temperature, cosine=int(cosine))
    return _run("moco", dict(q=q, k=k, queue=queue, N=N, K=K, D=D), opts,
                {"q": q.shape, "k": k.shape}, grad)


def clip(a, b, log_scale=float(np.log(1 / 0.07)), cosine=True, grad=False):
    """CLIP loss of a, b: (N, D) with logit scale e^log_scale.
    Returns loss or (loss, da, db, dlog_scale)."""
    a, b = as_array(a), as_array(b)
    N, D = _shape(a, 2, "a")
    opts = _lib.make_opts("clip", cosine=int(cosine))
    out = _run("clip", dict(a=a, b=b, log_scale=log_scale, N=N, D=D), opts,
               {"a": a.shape, "b": b.shape, "log_scale": (1,)}, grad)
    return out if not grad else out[:3] + (float(out[3][0]),)


def siglip(a, b, log_t=float(np.log(10.0)), bias=-10.0, cosine=True,
           grad=False):
    """SigLIP loss of a, b: (N, D). Returns loss or
    (loss, da, db, dlog_t, dbias)."""
    a, b = as_array(a), as_array(b)
    N, D = _shape(a, 2, "a")
    opts = _lib.make_opts("siglip", cosine=int(cosine))
    out = _run("siglip", dict(a=a, b=b, log_t=log_t, bias=bias, N=N, D=D),
               opts, {"a": a.shape, "b": b.shape, "log_t": (1,),
                      "bias": (1,)}, grad)
    return out if not grad else out[:3] + (float(out[3][0]), float(out[4][0]))


# ---- state objects ----------------------------------------------------------

class _Handle:
    """An owned C object: self._p holds its pointer, freed on collection by
    the C function named by the subclass's _free."""

    @classmethod
    def _wrap(cls, ptr):
        self = cls.__new__(cls)
        self._p = ptr
        return self

    def __del__(self):
        if getattr(self, "_p", None) and lib is not None:
            getattr(lib, self._free)(self._p)
            self._p = None


class Center(_Handle):
    """Teacher centre (ss_center) of dimension K for DINO / iBOT."""

    _free = "ss_center_free"

    def __init__(self, K, values=None):
        self._p = ctypes.c_void_p()
        check(lib.ss_center_create(ctypes.byref(self._p), int(K)))
        if values is not None:
            self.set(values)

    @property
    def ptr(self):
        return self._p.value

    @property
    def dim(self):
        return lib.ss_center_dim(self._p)

    @property
    def value(self):
        return np.ctypeslib.as_array(lib.ss_center_data(self._p),
                                     (self.dim,)).copy()

    def set(self, values):
        v = as_array(values).reshape(-1)
        if v.shape[0] != self.dim:
            raise ValueError("selfsup: centre values must have %d entries, got %d"
                             % (self.dim, v.shape[0]))
        check(lib.ss_center_set(self._p, v.ctypes.data))

    def accumulate(self, x):
        x = as_array(x)
        x2 = x.reshape(-1, x.shape[-1])
        check(lib.ss_center_accumulate(self._p, x2.ctypes.data, x2.shape[0]))

    def update(self, momentum):
        check(lib.ss_center_update(self._p, float(momentum)))

    def save(self, path):
        check(lib.ss_center_save(self._p, str(path).encode()))

    @classmethod
    def load(cls, path):
        p = ctypes.c_void_p()
        check(lib.ss_center_load(ctypes.byref(p), str(path).encode()))
        return cls._wrap(p)


class Queue(_Handle):
    """Ring buffer of K keys of dimension D (ss_queue), for moco()."""

    _free = "ss_queue_free"

    def __init__(self, K, D, seed=None):
        self._p = ctypes.c_void_p()
        rng = None
        if seed is not None:
            rng = _lib.RNG()
            lib.ss_rng_seed(ctypes.byref(rng), int(seed))
        check(lib.ss_queue_create(ctypes.byref(self._p), int(K), int(D),
                                  None if rng is None else ctypes.byref(rng)))

    def __len__(self):
        return lib.ss_queue_len(self._p)

    @property
    def dim(self):
        return lib.ss_queue_dim(self._p)

    @property
    def count(self):
        return lib.ss_queue_count(self._p)

    def data(self):
        """Rows in storage order (K, D), a copy."""
        ptr = ctypes.cast(lib.ss_queue_data(self._p),
                          ctypes.POINTER(ctypes.c_float))
        return np.ctypeslib.as_array(ptr, (len(self), self.dim)).copy()

    def read(self):
        """Rows oldest first (K, D)."""
        out = np.empty((len(self), self.dim), np.float32)
        check(lib.ss_queue_read(self._p, out.ctypes.data))
        return out

    def enqueue(self, keys):
        keys = as_array(keys)
        if keys.ndim != 2 or keys.shape[1] != self.dim:
            raise ValueError("selfsup: keys must have shape (n, %d), got %s"
                             % (self.dim, keys.shape))
        check(lib.ss_queue_enqueue(self._p, keys.ctypes.data, keys.shape[0]))

    def save(self, path):
        check(lib.ss_queue_save(self._p, str(path).encode()))

    @classmethod
    def load(cls, path):
        p = ctypes.c_void_p()
        check(lib.ss_queue_load(ctypes.byref(p), str(path).encode()))
        return cls._wrap(p)


def _center(center, K):
    if isinstance(center, Center):
        return center
    if center is None:
        return Center(K)
    return Center(K, center)


# ---- distillation family ----------------------------------------------------

def dino(teacher, student, center=None, teacher_temp=0.04, student_temp=0.1,
         grad=False):
    """DINO: teacher: (G, N, K), student: (V, N, K) (global views first),
    center: a Center, an array (K) or None (zeros). Returns loss or
    (loss, dstudent). The centre is read, not updated."""
    teacher, student = as_array(teacher), as_array(student)
    G, N, K = _shape(teacher, 3, "teacher")
    V = _shape(student, 3, "student")[0]
    c = _center(center, K)
    opts = _lib.make_opts("dino", student_temp=student_temp)
    return _run("dino", dict(teacher=teacher, student=student, center=c.ptr,
                             teacher_temp=teacher_temp, G=G, V=V, N=N, K=K),
                opts, {"student": student.shape}, grad)


def ibot(teacher, student, mask, center=None, teacher_temp=0.04,
         student_temp=0.1, grad=False):
    """iBOT patch loss: mask: (B, T) 0/1 (or (B, H, W)), teacher, student:
    (M, K) for the M masked tokens. Returns loss or (loss, dstudent)."""
    teacher, student = as_array(teacher), as_array(student)
    mask = np.asarray(mask)
    mask = as_array(mask.reshape(mask.shape[0], -1), "u8")
    B, T = mask.shape
    M, K = _shape(student, 2, "student")
    c = _center(center, K)
    opts = _lib.make_opts("ibot", teacher_temp=teacher_temp,
                          student_temp=student_temp)
    return _run("ibot", dict(teacher=teacher, student=student, mask=mask,
                             center=c.ptr, B=B, T=T, M=M, K=K),
                opts, {"student": student.shape}, grad)


def swav(high, low=None, queue=None, temperature=0.1, sinkhorn_iterations=3,
         sinkhorn_epsilon=0.05, grad=False):
    """SwAV: high: (H, N, K), low: (L, N, K) or None, queue: (H, Q, K) or
    None. Returns loss or (loss, dhigh, dlow)."""
    high = as_array(high)
    H, N, K = _shape(high, 3, "high")
    low = None if low is None or len(low) == 0 else as_array(low)
    queue = None if queue is None or len(queue) == 0 else as_array(queue)
    L = 0 if low is None else _shape(low, 3, "low")[0]
    Q = 0 if queue is None else _shape(queue, 3, "queue")[1]
    opts = _lib.make_opts("swav", temperature=temperature,
                          sinkhorn_iterations=sinkhorn_iterations,
                          sinkhorn_epsilon=sinkhorn_epsilon)
    shapes = {"high": high.shape}
    if low is not None:
        shapes["low"] = low.shape
    out = _run("swav", dict(high=high, low=low, queue=queue, H=H, L=L, N=N,
                            Q=Q, K=K), opts, shapes, grad)
    return out if not grad or low is not None else out + (None,)


def msn(anchors, targets, prototypes, temperature=0.1, sharpen_temperature=0.25,
        sinkhorn_iterations=3, regularization_weight=1.0, grad=False):
    """MSN: anchors: (V, N, D), targets: (N, D), prototypes: (K, D).
    Returns loss or (loss, danchors, dprototypes)."""
    return _msn(anchors, targets, prototypes, 0, grad, temperature=temperature,
                sharpen_temperature=sharpen_temperature,
                sinkhorn_iterations=sinkhorn_iterations,
                regularization_weight=regularization_weight)


def pmsn(anchors, targets, prototypes, temperature=0.1,
         sharpen_temperature=0.25, sinkhorn_iterations=3,
         regularization_weight=1.0, power_law_exponent=0.25, grad=False):
    """PMSN (power-law prior); as msn()."""
    return _msn(anchors, targets, prototypes, 1, grad, temperature=temperature,
                sharpen_temperature=sharpen_temperature,
                sinkhorn_iterations=sinkhorn_iterations,
                regularization_weight=regularization_weight,
                power_law_exponent=power_law_exponent)


def _msn(anchors, targets, prototypes, variant, grad, **fields):
    anchors, targets = as_array(anchors), as_array(targets)
    prototypes = as_array(prototypes)
    V, N, D = _shape(anchors, 3, "anchors")
    K = _shape(prototypes, 2, "prototypes")[0]
    opts = _lib.make_opts("msn", variant, **fields)
    return _run("msn", dict(anchors=anchors, targets=targets,
                            prototypes=prototypes, V=V, N=N, K=K, D=D), opts,
                {"anchors": anchors.shape, "prototypes": prototypes.shape},
                grad)


# ---- redundancy-reduction family --------------------------------------------

def negcos(p, z, eps=1e-8, grad=False):
    """Negative cosine similarity -mean_n cos(p_n, z_n) of p, z: (N, D).
    Returns loss or (loss, dp, dz)."""
    p, z = as_array(p), as_array(z)
    N, D = _shape(p, 2, "p")
    opts = _lib.make_opts("negcos", eps=eps)
    return _run("negcos", dict(p=p, z=z, N=N, D=D), opts,
                {"p": p.shape, "z": z.shape}, grad)


def barlow(a, b, lambda_param=5e-3, bn_eps=1e-5, grad=False):
    """Barlow Twins of a, b: (N, D). Returns loss or (loss, da, db)."""
    a, b = as_array(a), as_array(b)
    N, D = _shape(a, 2, "a")
    opts = _lib.make_opts("barlow", bn_eps=bn_eps)
    opts.__setattr__("lambda", lambda_param)
    return _run("barlow", dict(a=a, b=b, N=N, D=D), opts,
                {"a": a.shape, "b": b.shape}, grad)


def vicreg(a, b, lambda_param=25.0, mu_param=25.0, nu_param=1.0, eps=1e-4,
           grad=False):
    """VICReg of a, b: (N, D). Returns loss or (loss, da, db)."""
    a, b = as_array(a), as_array(b)
    N, D = _shape(a, 2, "a")
    opts = _lib.make_opts("vicreg", mu=mu_param, nu=nu_param, eps=eps)
    opts.__setattr__("lambda", lambda_param)
    return _run("vicreg", dict(a=a, b=b, N=N, D=D), opts,
                {"a": a.shape, "b": b.shape}, grad)


# ---- geometry family --------------------------------------------------------

class TicoState(_Handle):
    """TiCo running covariance (ss_tico_state) of dimension D."""

    _free = "ss_tico_state_free"

    def __init__(self, D, C=None):
        self._p = ctypes.c_void_p()
        check(lib.ss_tico_state_create(ctypes.byref(self._p), int(D)))
        if C is not None:
            self.write(C)

    @property
    def ptr(self):
        return self._p.value

    @property
    def dim(self):
        return lib.ss_tico_state_dim(self._p)

    @property
    def steps(self):
        return lib.ss_tico_state_steps(self._p)

    def read(self):
        out = np.empty((self.dim, self.dim), np.float32)
        check(lib.ss_tico_state_read(self._p, out.ctypes.data))
        return out

    def write(self, C):
        C = as_array(C)
        if C.shape != (self.dim, self.dim):
            raise ValueError("selfsup: C must have shape (%d, %d), got %s"
                             % (self.dim, self.dim, C.shape))
        check(lib.ss_tico_state_write(self._p, C.ctypes.data))

    def save(self, path):
        check(lib.ss_tico_state_save(self._p, str(path).encode()))

    @classmethod
    def load(cls, path):
        p = ctypes.c_void_p()
        check(lib.ss_tico_state_load(ctypes.byref(p), str(path).encode()))
        return cls._wrap(p)


def tico(za, zb, state, beta=0.9, rho=20.0, update=True, grad=False):
    """TiCo of za, zb: (N, D) with a TicoState (updated when update).
    Returns loss or (loss, dza, dzb)."""
    za, zb = as_array(za), as_array(zb)
    N, D = _shape(za, 2, "za")
    opts = _lib.make_opts("tico", beta=beta, rho=rho, update=int(update))
    return _run("tico", dict(state=state.ptr, za=za, zb=zb, N=N, D=D), opts,
                {"za": za.shape, "zb": zb.shape}, grad)


def wmse(z, perm=None, w_size=256, w_iter=1, eps=0.0, grad=False):
    """W-MSE of z: (V, N, D); perm: (w_iter, N) permutations or None
    (identity). Returns loss or (loss, dz)."""
    z = as_array(z)
    V, N, D = _shape(z, 3, "z")
    perm = None if perm is None else as_array(perm, "i")
    opts = _lib.make_opts("wmse", w_size=w_size, w_iter=w_iter, eps=eps)
    return _run("wmse", dict(z=z, perm=perm, V=V, N=N, D=D), opts,
                {"z": z.shape}, grad)


def hypersphere(za, zb, t=1.0, lam=1.0, alpha=2.0, grad=False):
    """Alignment + uniformity of za, zb: (N, D). Returns loss or
    (loss, dza, dzb)."""
    za, zb = as_array(za), as_array(zb)
    N, D = _shape(za, 2, "za")
    opts = _lib.make_opts("hypersphere", t=t, alpha=alpha)
    opts.__setattr__("lambda", lam)
    return _run("hypersphere", dict(za=za, zb=zb, N=N, D=D), opts,
                {"za": za.shape, "zb": zb.shape}, grad)


def koleo(x, eps=1e-8, grad=False):
    """KoLeo of x: (N, D). Returns loss or (loss, dx)."""
    x = as_array(x)
    N, D = _shape(x, 2, "x")
    opts = _lib.make_opts("koleo", eps=eps)
    return _run("koleo", dict(x=x, N=N, D=D), opts, {"x": x.shape}, grad)


def mmcr(online, momentum=None, lmda=5e-3, grad=False):
    """MMCR of online: (B, K, D) and momentum: (B, K, D) or None.
    Returns loss or (loss, donline, dmomentum)."""
    online = as_array(online)
    B, K, D = _shape(online, 3, "online")
    momentum = None if momentum is None else as_array(momentum)
    opts = _lib.make_opts("mmcr")
    opts.__setattr__("lambda", lmda)
    shapes = {"online": online.shape}
    if momentum is not None:
        shapes["momentum"] = momentum.shape
    out = _run("mmcr", dict(online=online, momentum=momentum, B=B, K=K, D=D),
               opts, shapes, grad)
    return out if not grad or momentum is not None else out + (None,)


def empssl(z, tcr_eps=0.2, inv_coef=200.0, grad=False):
    """EMP-SSL of z: (V, N, D) (coding rate maximised: the paper's sign).
    Returns loss or (loss, dz)."""
    z = as_array(z)
    V, N, D = _shape(z, 3, "z")
    opts = _lib.make_opts("empssl", tcr_eps=tcr_eps, inv_coef=inv_coef)
    return _run("empssl", dict(z=z, V=V, N=N, D=D), opts, {"z": z.shape}, grad)


# ---- predictive family ------------------------------------------------------

def _class_weights(opts, class_weights, V):
    if class_weights is None:
        return None
    w = as_array(class_weights).reshape(-1)
    if w.shape[0] != V:
        raise ValueError("selfsup: class_weights must have %d entries, got %d"
                         % (V, w.shape[0]))
    opts.class_weights = w.ctypes.data
    return w  # the caller keeps it alive for the C calls


def mlm(logits, targets, ignore_index=-100, label_smoothing=0.0,
        class_weights=None, grad=False):
    """Masked cross-entropy of logits: (T, V) against targets: (T) int
    (ignore_index skipped), as torch.nn.CrossEntropyLoss. Returns loss or
    (loss, dlogits)."""
    logits, targets = as_array(logits), as_array(targets, "i").reshape(-1)
    T, V = _shape(logits, 2, "logits")
    opts = _lib.make_opts("mlm", ignore_index=ignore_index,
                          label_smoothing=label_smoothing)
    w = _class_weights(opts, class_weights, V)
    return _run("mlm", dict(logits=logits, targets=targets, T=T, V=V, keep=w),
                opts, {"logits": logits.shape}, grad)


def fused_ce(hidden, weight, targets, bias=None, ignore_index=-100,
             label_smoothing=0.0, class_weights=None, grad=False):
    """Cross-entropy of hidden: (T, H) @ weight: (V, H)^T + bias (V) without
    materialising the logits. Returns loss or (loss, dhidden, dweight,
    dbias) (dbias None without bias)."""
    hidden, weight = as_array(hidden), as_array(weight)
    targets = as_array(targets, "i").reshape(-1)
    bias = None if bias is None else as_array(bias)
    T, H = _shape(hidden, 2, "hidden")
    V = _shape(weight, 2, "weight")[0]
    opts = _lib.make_opts("fused_ce", ignore_index=ignore_index,
                          label_smoothing=label_smoothing)
    w = _class_weights(opts, class_weights, V)
    shapes = {"hidden": hidden.shape, "weight": weight.shape}
    if bias is not None:
        shapes["bias"] = bias.shape
    out = _run("fused_ce", dict(hidden=hidden, weight=weight, bias=bias,
                                targets=targets, T=T, H=H, V=V, keep=w),
               opts, shapes, grad)
    return out if not grad or bias is not None else out + (None,)


def mae(pred, imgs, mask, patch_size, norm_pix=True, grad=False):
    """MAE's masked-patch MSE: pred: (B, L, P), imgs: (B, C, H, W), mask:
    (B, L) 1 = masked. Returns loss or (loss, dpred)."""
    pred, imgs = as_array(pred), as_array(imgs)
    mask = as_array(np.asarray(mask) != 0, "u8")
    B, C, Hi, Wi = _shape(imgs, 4, "imgs")
    opts = _lib.make_opts("mae", norm_pix=int(norm_pix))
    return _run("mae", dict(pred=pred, imgs=imgs, mask=mask, B=B, C=C, Hi=Hi,
                            Wi=Wi, p=int(patch_size)), opts,
                {"pred": pred.shape}, grad)
