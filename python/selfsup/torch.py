"""Drop-in torch.nn.Module losses over libselfsup.

Class names, constructor parameters, defaults and forward signatures follow
lightly's lightly.loss classes, so `from selfsup.torch import NTXentLoss`
replaces `from lightly.loss import NTXentLoss`. Autograd runs through the C
backward (one torch.autograd.Function for every loss). Inputs of any
floating dtype are computed in float32; gradients come back in the input's
dtype. State (memory bank, teacher centre) lives in registered buffers.
CPU tensors only.
"""
import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import _lib
from .losses import Center as _CCenter
from .losses import TicoState as _CTicoState

__all__ = ["NTXentLoss", "DCLLoss", "DCLWLoss", "SupConLoss", "DINOLoss",
           "IBOTPatchLoss", "SwaVLoss", "MSNLoss", "PMSNLoss", "CLIPLoss",
           "SigLIPLoss", "negative_mises_fisher_weights",
           "NegativeCosineSimilarity", "BarlowTwinsLoss", "VICRegLoss",
           "TiCoLoss", "HypersphereLoss", "KoLeoLoss", "MMCRLoss", "WMSELoss",
           "MaskedCrossEntropyLoss", "FusedLinearCrossEntropyLoss", "MAELoss"]


# ---- tensors <-> arrays -----------------------------------------------------

def _check_device(t, name):
    if t.device.type != "cpu":
        raise RuntimeError(
            "selfsup.torch: %s is on %s, but libselfsup has no GPU backend yet; "
            "move the tensors to the CPU (tensor.cpu()) or use a PyTorch loss "
            "on the GPU" % (name, t.device))


def _f32(t, name):
    """float32 C-contiguous array sharing memory with t when t already is one."""
    _check_device(t, name)
    t = t.detach()
    if t.dtype != torch.float32:
        if not t.is_floating_point():
            raise TypeError("selfsup.torch: %s must be a floating tensor, got %s"
                            % (name, t.dtype))
        t = t.float()
    return t.contiguous().numpy()


class _CFunction(torch.autograd.Function):
    """Loss through C. op(arrays) -> (Call, {tensor index: grad name})."""

    @staticmethod
    def forward(ctx, op, names, *tensors):
        arrays = [_f32(t, n) for t, n in zip(tensors, names)]
        call, grad_of = op(arrays)
        loss = call.forward()
        ctx.call, ctx.grad_of = call, grad_of
        ctx.meta = [(t.dtype, tuple(t.shape)) for t in tensors]
        return torch.tensor(loss, dtype=tensors[0].dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gout):
        need = ctx.needs_input_grad[2:]
        want = {ctx.grad_of[i] for i, n in enumerate(need)
                if n and i in ctx.grad_of}
        shapes = {ctx.grad_of[i]: ctx.meta[i][1] for i in ctx.grad_of}
        grads = ctx.call.backward(float(gout), shapes, want)
        out = [None, None]
        for i, (dtype, shape) in enumerate(ctx.meta):
            g = grads.get(ctx.grad_of.get(i)) if need[i] else None
            out.append(None if g is None
                       else torch.from_numpy(g).reshape(shape).to(dtype))
        return tuple(out)


def _apply(op, names, *tensors):
    return _CFunction.apply(op, names, *tensors)


def _no_distributed(flag, what="gather_distributed"):
    if flag:
        raise NotImplementedError(
            "selfsup.torch: %s=True is not supported yet (no distributed "
            "backend); use %s=False" % (what, what))


def _check_temperature(t):
    if abs(t) < 1e-8:
        raise ValueError("Illegal temperature: abs({}) < 1e-8".format(t))


def _view_stack(outs, name):
    for i, t in enumerate(outs):
        _check_device(t, "%s[%d]" % (name, i))
    return torch.stack(list(outs))


# ---- contrastive family -----------------------------------------------------

class NTXentLoss(nn.Module):
    """lightly NTXentLoss: SimCLR's NT-Xent; with memory_bank_size > 0 the
    MoCo loss against a bank of past (normalised) out1, updated when out0
    requires grad. The bank is a ring buffer (as ss_queue): it wraps instead
    of dropping the overflow as lightly does. Buffers: bank (K, D),
    bank_ptr."""

    def __init__(self, temperature=0.5, memory_bank_size=0,
                 gather_distributed=False):
        super().__init__()
        _no_distributed(gather_distributed)
        _check_temperature(temperature)
        self.temperature = temperature
        self.gather_distributed = gather_distributed
        dim = None
        if isinstance(memory_bank_size, (tuple, list)):
            memory_bank_size, dim = memory_bank_size[0], memory_bank_size[1]
        if memory_bank_size < 0:
            raise ValueError("Illegal memory bank size {}, must be non-negative."
                             .format(memory_bank_size))
        self.memory_bank_size = int(memory_bank_size)
        self.register_buffer("bank", torch.empty(0))
        self.register_buffer("bank_ptr", torch.zeros(1, dtype=torch.long))
        if self.memory_bank_size > 0 and dim is not None:
            self._init_bank(dim)

    def _init_bank(self, dim):
        bank = F.normalize(torch.randn(self.memory_bank_size, dim), dim=1)
        self.bank = bank
        self.bank_ptr.zero_()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "bank"
        if key in state_dict:  # the bank is sized lazily: adopt the saved shape
            self.bank = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, out0, out1):
        if self.memory_bank_size == 0:
            z = _view_stack((out0, out1), "out")
            V, N, D = z.shape
            opts = _lib.make_opts("ntxent", temperature=self.temperature)

            def op(a):
                return _lib.Call("ntxent", dict(z=a[0], V=V, N=N, D=D), opts), \
                    {0: "z"}
            return _apply(op, ("z",), z)
        return self._forward_bank(out0, out1)

    def _forward_bank(self, out0, out1):
        _check_device(out0, "out0")
        _check_device(out1, "out1")
        N, D = out0.shape
        if self.bank.numel() == 0:
            self._init_bank(D)
        bank = self.bank
        if bank.shape[1] != D:
            raise ValueError("selfsup.torch: memory bank has dimension %d, "
                             "outputs have %d" % (bank.shape[1], D))
        K = bank.shape[0]
        opts = _lib.make_opts("moco", temperature=self.temperature)

        def op(a):
            return _lib.Call("moco", dict(q=a[0], k=a[1], queue=a[2], N=N, K=K,
                                          D=D), opts), {0: "q", 1: "k"}
        loss = _apply(op, ("out0", "out1", "bank"), out0, out1, bank)
        if out0.requires_grad:
            self._enqueue(F.normalize(out1.detach().float(), dim=1))
        return loss

    @torch.no_grad()
    def _enqueue(self, keys):
        # Out of place: the autograd graph still holds the old bank.
        K = self.bank.shape[0]
        keys = keys[-K:]
        n = keys.shape[0]
        ptr = int(self.bank_ptr)
        idx = (torch.arange(n) + ptr) % K
        bank = self.bank.clone()
        bank[idx] = keys
        self.bank = bank
        self.bank_ptr[0] = (ptr + n) % K


def negative_mises_fisher_weights(out0, out1, sigma=0.5):
    """lightly's DCLW weights (kept for DCLLoss(weight_fn=...) compatibility)."""
    similarity = torch.einsum("nm,nm->n", out0.detach(), out1.detach()) / sigma
    return 2 - out0.shape[0] * F.softmax(similarity, dim=0)


class DCLLoss(nn.Module):
    """lightly DCLLoss. weight_fn: None, or functools.partial(
    negative_mises_fisher_weights, sigma=s) (that is DCLW); other callables
    are not supported by the C loss."""

    def __init__(self, temperature=0.1, weight_fn=None, gather_distributed=False):
        super().__init__()
        _no_distributed(gather_distributed)
        self.temperature = temperature
        self.weight_fn = weight_fn
        self.gather_distributed = gather_distributed
        self._variant, self._sigma = 0, None
        if weight_fn is not None:
            if (isinstance(weight_fn, functools.partial)
                    and getattr(weight_fn.func, "__name__", "")
                    == "negative_mises_fisher_weights"):
                self._variant = 1
                self._sigma = weight_fn.keywords.get("sigma", 0.5)
            else:
                raise NotImplementedError(
                    "selfsup.torch.DCLLoss: weight_fn must be None or "
                    "partial(negative_mises_fisher_weights, sigma=...); "
                    "arbitrary Python weight functions cannot run in C")

    def forward(self, out0, out1):
        z = _view_stack((out0, out1), "out")
        V, N, D = z.shape
        opts = _lib.make_opts("dcl", self._variant, temperature=self.temperature,
                              sigma=self._sigma)

        def op(a):
            return _lib.Call("dcl", dict(z=a[0], V=V, N=N, D=D), opts), {0: "z"}
        return _apply(op, ("z",), z)


class DCLWLoss(DCLLoss):
    """lightly DCLWLoss: DCL with negative von Mises-Fisher weights."""

    def __init__(self, temperature=0.1, sigma=0.5, gather_distributed=False):
        super().__init__(temperature=temperature,
                         weight_fn=functools.partial(
                             negative_mises_fisher_weights, sigma=sigma),
                         gather_distributed=gather_distributed)


class SupConLoss(nn.Module):
    """lightly SupConLoss: forward(out0, out1, labels=None); labels None
    gives NT-Xent; rescale multiplies the loss by the temperature."""

    def __init__(self, temperature=0.5, gather_distributed=False, rescale=True):
        super().__init__()
        _no_distributed(gather_distributed)
        _check_temperature(temperature)
        self.temperature = temperature
        self.gather_distributed = gather_distributed
        self.rescale = rescale

    def forward(self, out0, out1, labels=None):
        z = _view_stack((out0, out1), "out")
        V, N, D = z.shape
        if labels is None:
            lab = np.arange(N, dtype=np.int64)
        else:
            _check_device(labels, "labels")
            # any integer classes (lightly allows negatives); C wants >= 0
            lab = torch.unique(labels.reshape(-1), return_inverse=True)[1]
            lab = lab.to(torch.int64).contiguous().numpy()
        opts = _lib.make_opts("supcon", temperature=self.temperature)

        def op(a):
            return _lib.Call("supcon", dict(z=a[0], labels=lab, V=V, N=N, D=D),
                             opts), {0: "z"}
        loss = _apply(op, ("z",), z)
        return loss * self.temperature if self.rescale else loss


class CLIPLoss(nn.Module):
    """OpenCLIP's ClipLoss (single process): forward(image_features,
    text_features, logit_scale) with logit_scale = exp(t), a tensor or
    float. normalize=True L2-normalises the features first (a no-op for
    features the model already normalised)."""

    def __init__(self, normalize=True):
        super().__init__()
        self.normalize = normalize

    def forward(self, image_features, text_features, logit_scale):
        N, D = image_features.shape
        t = torch.log(torch.as_tensor(logit_scale, dtype=torch.float32))
        opts = _lib.make_opts("clip", cosine=int(self.normalize))

        def op(a):
            return _lib.Call("clip", dict(a=a[0], b=a[1], log_scale=float(a[2]),
                                          N=N, D=D), opts), \
                {0: "a", 1: "b", 2: "log_scale"}
        return _apply(op, ("image_features", "text_features", "logit_scale"),
                      image_features, text_features, t.reshape(()))


class SigLIPLoss(nn.Module):
    """SigLIP (big_vision / OpenCLIP SigLipLoss, single process):
    forward(image_features, text_features, logit_scale, logit_bias) with
    logit_scale = exp(t')."""

    def __init__(self, normalize=True):
        super().__init__()
        self.normalize = normalize

    def forward(self, image_features, text_features, logit_scale, logit_bias):
        N, D = image_features.shape
        t = torch.log(torch.as_tensor(logit_scale, dtype=torch.float32))
        b = torch.as_tensor(logit_bias, dtype=torch.float32)
        opts = _lib.make_opts("siglip", cosine=int(self.normalize))

        def op(a):
            return _lib.Call("siglip", dict(a=a[0], b=a[1], log_t=float(a[2]),
                                            bias=float(a[3]), N=N, D=D),
                             opts), {0: "a", 1: "b", 2: "log_t", 3: "bias"}
        return _apply(op, ("image_features", "text_features", "logit_scale",
                           "logit_bias"), image_features, text_features,
                      t.reshape(()), b.reshape(()))


# ---- distillation family ----------------------------------------------------

class DINOLoss(nn.Module):
    """lightly DINOLoss. Buffer center: (1, 1, output_dim), updated by
    forward (update_center) as lightly. The teacher gets no gradient."""

    def __init__(self, output_dim=65536, warmup_teacher_temp=0.04,
                 teacher_temp=0.04, warmup_teacher_temp_epochs=30,
                 student_temp=0.1, center_momentum=0.9, center_mode="mean"):
        super().__init__()
        if center_mode != "mean":
            raise ValueError("Unknown mode '{}'. Valid modes are ['mean']."
                             .format(center_mode))
        self.teacher_temp = teacher_temp
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, 1, output_dim))
        self.warmup_teacher_temp_epochs = warmup_teacher_temp_epochs
        self.teacher_temp_schedule = torch.linspace(
            start=warmup_teacher_temp, end=teacher_temp,
            steps=warmup_teacher_temp_epochs)

    def forward(self, teacher_out, student_out, teacher_temp=None, epoch=None):
        if teacher_temp is not None:
            tt = float(teacher_temp)
        elif epoch is not None and epoch < self.warmup_teacher_temp_epochs:
            tt = float(self.teacher_temp_schedule[epoch])
        else:
            tt = float(self.teacher_temp)
        teacher = _view_stack(teacher_out, "teacher_out")
        student = _view_stack(student_out, "student_out")
        G, N, K = teacher.shape
        V = student.shape[0]
        centre = _CCenter(K, _f32(self.center, "center"))
        opts = _lib.make_opts("dino", student_temp=self.student_temp)

        def op(a):
            return _lib.Call("dino", dict(teacher=a[0], student=a[1],
                                          center=centre.ptr, teacher_temp=tt,
                                          G=G, V=V, N=N, K=K, keep=centre),
                             opts), \
                {1: "student"}
        loss = _apply(op, ("teacher_out", "student_out"), teacher, student)
        self.update_center(teacher)
        return loss

    @torch.no_grad()
    def update_center(self, teacher_out):
        batch_center = teacher_out.float().mean(dim=(0, 1), keepdim=True)
        self.center.data = (self.center * self.center_momentum
                            + batch_center * (1 - self.center_momentum))


class _Center(nn.Module):
    """lightly.models.modules.center.Center (mode "mean"): buffer center."""

    def __init__(self, size, momentum=0.9):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(*size))

    @property
    def value(self):
        return self.center

    @torch.no_grad()
    def update(self, x):
        batch_center = x.float().mean(dim=0, keepdim=True)
        self.center.data = (self.center * self.momentum
                            + batch_center * (1 - self.momentum))


class IBOTPatchLoss(nn.Module):
    """lightly IBOTPatchLoss: forward(teacher_out, student_out, mask) with
    teacher_out, student_out: (M, K) masked tokens, mask: (B, H, W) bool.
    Submodule center (buffer center.center, shape (1, K))."""

    def __init__(self, output_dim, teacher_temp=0.04, student_temp=0.1,
                 center_mode="mean", center_momentum=0.9):
        super().__init__()
        if center_mode != "mean":
            raise ValueError("Unknown mode '{}'. Valid modes are ['mean']."
                             .format(center_mode))
        self.teacher_temp = teacher_temp
        self.student_temperature = student_temp
        self.center = _Center((1, output_dim), center_momentum)

    def forward(self, teacher_out, student_out, mask):
        _check_device(mask, "mask")
        m = mask.reshape(mask.shape[0], -1).to(torch.uint8).contiguous().numpy()
        B, T = m.shape
        M, K = student_out.shape
        centre = _CCenter(K, _f32(self.center.value, "center"))
        opts = _lib.make_opts("ibot", teacher_temp=self.teacher_temp,
                              student_temp=self.student_temperature)

        def op(a):
            return _lib.Call("ibot", dict(teacher=a[0], student=a[1], mask=m,
                                          center=centre.ptr, B=B, T=T, M=M,
                                          K=K, keep=centre), opts), \
                {1: "student"}
        loss = _apply(op, ("teacher_out", "student_out"), teacher_out,
                      student_out)
        self.center.update(teacher_out.detach())
        return loss


class SwaVLoss(nn.Module):
    """lightly SwaVLoss: forward(high_resolution_outputs,
    low_resolution_outputs, queue_outputs=None), lists of (N, K) scores."""

    def __init__(self, temperature=0.1, sinkhorn_iterations=3,
                 sinkhorn_epsilon=0.05, sinkhorn_gather_distributed=False):
        super().__init__()
        _no_distributed(sinkhorn_gather_distributed,
                        "sinkhorn_gather_distributed")
        self.temperature = temperature
        self.sinkhorn_iterations = sinkhorn_iterations
        self.sinkhorn_epsilon = sinkhorn_epsilon
        self.sinkhorn_gather_distributed = sinkhorn_gather_distributed

    def forward(self, high_resolution_outputs, low_resolution_outputs,
                queue_outputs=None):
        high = _view_stack(high_resolution_outputs, "high_resolution_outputs")
        H, N, K = high.shape
        tensors, names, grad_of = [high], ["high"], {0: "high"}
        L = len(low_resolution_outputs)
        if L:
            tensors.append(_view_stack(low_resolution_outputs,
                                       "low_resolution_outputs"))
            names.append("low")
            grad_of[1] = "low"
        Q = 0
        if queue_outputs is not None and len(queue_outputs):
            q = _view_stack([t.detach() for t in queue_outputs],
                            "queue_outputs")
            Q = q.shape[1]
            tensors.append(q)
            names.append("queue")
        opts = _lib.make_opts("swav", temperature=self.temperature,
                              sinkhorn_iterations=self.sinkhorn_iterations,
                              sinkhorn_epsilon=self.sinkhorn_epsilon)

        def op(a):
            v = dict(zip(names, a))
            return _lib.Call("swav", dict(high=v["high"], low=v.get("low"),
                                          queue=v.get("queue"), H=H, L=L, N=N,
                                          Q=Q, K=K), opts), grad_of
        return _apply(op, tuple(names), *tensors)


class MSNLoss(nn.Module):
    """lightly MSNLoss: forward(anchors, targets, prototypes,
    target_sharpen_temperature=0.25) with anchors: (V * N, D) (view-major),
    targets: (N, D), prototypes: (K, D). Targets get no gradient."""

    _variant = 0

    def __init__(self, temperature=0.1, sinkhorn_iterations=3,
                 regularization_weight=1.0, me_max_weight=None,
                 gather_distributed=False):
        super().__init__()
        _no_distributed(gather_distributed)
        if me_max_weight is not None:  # lightly's deprecated alias
            regularization_weight = me_max_weight
        self.temperature = temperature
        self.sinkhorn_iterations = sinkhorn_iterations
        self.regularization_weight = regularization_weight
        self.gather_distributed = gather_distributed
        self._extra = {}

    def forward(self, anchors, targets, prototypes,
                target_sharpen_temperature=0.25):
        N, D = targets.shape
        if anchors.shape[0] % N:
            raise ValueError("selfsup.torch: anchors rows (%d) must be a "
                             "multiple of targets rows (%d)"
                             % (anchors.shape[0], N))
        V = anchors.shape[0] // N
        K = prototypes.shape[0]
        opts = _lib.make_opts(
            "msn", self._variant, temperature=self.temperature,
            sharpen_temperature=target_sharpen_temperature,
            sinkhorn_iterations=self.sinkhorn_iterations,
            regularization_weight=self.regularization_weight, **self._extra)

        def op(a):
            return _lib.Call("msn", dict(anchors=a[0], targets=a[1],
                                         prototypes=a[2], V=V, N=N, K=K, D=D),
                             opts), {0: "anchors", 2: "prototypes"}
        return _apply(op, ("anchors", "targets", "prototypes"), anchors,
                      targets.detach(), prototypes)


class PMSNLoss(MSNLoss):
    """lightly PMSNLoss (power-law prior, KL(prior || mean prediction))."""

    _variant = 1

    def __init__(self, temperature=0.1, sinkhorn_iterations=3,
                 regularization_weight=1.0, power_law_exponent=0.25,
                 gather_distributed=False):
        super().__init__(temperature=temperature,
                         sinkhorn_iterations=sinkhorn_iterations,
                         regularization_weight=regularization_weight,
                         gather_distributed=gather_distributed)
        self.power_law_exponent = power_law_exponent
        self._extra = {"power_law_exponent": power_law_exponent}


# ---- redundancy-reduction family --------------------------------------------

def _pair_op(name, opts, N, D, names=("a", "b")):
    def op(a):
        return _lib.Call(name, {names[0]: a[0], names[1]: a[1], "N": N,
                                "D": D}, opts), {0: names[0], 1: names[1]}
    return op


def _check_2d(x, y, who):
    if x.dim() != 2 or x.shape != y.shape:
        raise ValueError("selfsup.torch.%s: expects two (N, D) tensors of the "
                         "same shape, got %s and %s"
                         % (who, tuple(x.shape), tuple(y.shape)))
    return x.shape


class NegativeCosineSimilarity(nn.Module):
    """lightly NegativeCosineSimilarity: -mean cos(x0, x1) along dim 1 of
    (N, D) inputs. Both inputs get gradient (detach x1 yourself for
    BYOL/SimSiam)."""

    def __init__(self, dim=1, eps=1e-8):
        super().__init__()
        self.dim = dim
        self.eps = eps

    def forward(self, x0, x1):
        N, D = _check_2d(x0, x1, "NegativeCosineSimilarity")
        if self.dim not in (1, -1):
            raise NotImplementedError("selfsup.torch.NegativeCosineSimilarity: "
                                      "only dim=1 of (N, D) inputs")
        opts = _lib.make_opts("negcos", eps=self.eps)
        return _apply(_pair_op("negcos", opts, N, D, ("p", "z")),
                      ("x0", "x1"), x0, x1)


class BarlowTwinsLoss(nn.Module):
    """lightly BarlowTwinsLoss (views standardised separately)."""

    def __init__(self, lambda_param=5e-3, gather_distributed=False):
        super().__init__()
        _no_distributed(gather_distributed)
        self.lambda_param = lambda_param
        self.gather_distributed = gather_distributed

    def forward(self, z_a, z_b):
        N, D = _check_2d(z_a, z_b, "BarlowTwinsLoss")
        opts = _lib.make_opts("barlow")
        setattr(opts, "lambda", self.lambda_param)
        return _apply(_pair_op("barlow", opts, N, D), ("z_a", "z_b"), z_a, z_b)


class VICRegLoss(nn.Module):
    """lightly VICRegLoss (2-D inputs)."""

    def __init__(self, lambda_param=25.0, mu_param=25.0, nu_param=1.0,
                 gather_distributed=False, eps=0.0001):
        super().__init__()
        _no_distributed(gather_distributed)
        self.lambda_param = lambda_param
        self.mu_param = mu_param
        self.nu_param = nu_param
        self.gather_distributed = gather_distributed
        self.eps = eps

    def forward(self, z_a, z_b):
        N, D = _check_2d(z_a, z_b, "VICRegLoss")
        opts = _lib.make_opts("vicreg", mu=self.mu_param, nu=self.nu_param,
                              eps=self.eps)
        setattr(opts, "lambda", self.lambda_param)
        return _apply(_pair_op("vicreg", opts, N, D), ("z_a", "z_b"), z_a, z_b)


# ---- geometry family --------------------------------------------------------

class TiCoLoss(nn.Module):
    """lightly TiCoLoss. Buffer C: the running covariance (D, D), sized at
    the first call (empty before), updated when update_covariance_matrix."""

    def __init__(self, beta=0.9, rho=20.0, gather_distributed=False,
                 update_covariance_matrix=True):
        super().__init__()
        _no_distributed(gather_distributed)
        self.beta = beta
        self.rho = rho
        self.gather_distributed = gather_distributed
        self.update_covariance_matrix = update_covariance_matrix
        self.register_buffer("C", torch.empty(0))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + "C" in state_dict:  # sized lazily: adopt the saved shape
            self.C = torch.empty_like(state_dict[prefix + "C"])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, z_a, z_b):
        N, D = _check_2d(z_a, z_b, "TiCoLoss")
        state = _CTicoState(D)
        if self.C.numel():
            state.write(_f32(self.C, "C"))
        update = bool(self.update_covariance_matrix)
        opts = _lib.make_opts("tico", beta=self.beta, rho=self.rho,
                              update=int(update))

        def op(a):
            return _lib.Call("tico", dict(state=state.ptr, za=a[0], zb=a[1],
                                          N=N, D=D, keep=state), opts), \
                {0: "za", 1: "zb"}
        loss = _apply(op, ("z_a", "z_b"), z_a, z_b)
        if update:
            self.C = torch.from_numpy(state.read())
        return loss


class HypersphereLoss(nn.Module):
    """lightly HypersphereLoss: alignment + uniformity (Wang & Isola), with
    a log-sum-exp uniformity that cannot underflow to -inf."""

    def __init__(self, t=1.0, lam=1.0, alpha=2.0):
        super().__init__()
        self.t = t
        self.lam = lam
        self.alpha = alpha

    def forward(self, z_a, z_b):
        N, D = _check_2d(z_a, z_b, "HypersphereLoss")
        opts = _lib.make_opts("hypersphere", t=self.t, alpha=self.alpha)
        setattr(opts, "lambda", self.lam)
        return _apply(_pair_op("hypersphere", opts, N, D, ("za", "zb")),
                      ("z_a", "z_b"), z_a, z_b)


class KoLeoLoss(nn.Module):
    """KoLeo (DINOv2 / lightly KoLeoLoss): forward(x) with x: (N, D)."""

    def __init__(self, p=2, eps=1e-8):
        super().__init__()
        if p != 2:
            raise NotImplementedError("selfsup.torch.KoLeoLoss: only p=2")
        self.p = p
        self.eps = eps

    def forward(self, x):
        if x.dim() != 2:
            raise ValueError("selfsup.torch.KoLeoLoss: x must be (N, D), got %s"
                             % (tuple(x.shape),))
        N, D = x.shape
        opts = _lib.make_opts("koleo", eps=self.eps)

        def op(a):
            return _lib.Call("koleo", dict(x=a[0], N=N, D=D), opts), {0: "x"}
        return _apply(op, ("x",), x)


class MMCRLoss(nn.Module):
    """lightly MMCRLoss: forward(online, momentum), both (B, K, D)."""

    def __init__(self, lmda=5e-3):
        super().__init__()
        if lmda < 0:
            raise ValueError("lmda must be non-negative")
        self.lmda = lmda

    def forward(self, online, momentum):
        if online.dim() != 3 or online.shape != momentum.shape:
            raise ValueError("selfsup.torch.MMCRLoss: online and momentum must "
                             "both be (B, K, D)")
        B, K, D = online.shape
        opts = _lib.make_opts("mmcr")
        setattr(opts, "lambda", self.lmda)

        def op(a):
            return _lib.Call("mmcr", dict(online=a[0], momentum=a[1], B=B, K=K,
                                          D=D), opts), \
                {0: "online", 1: "momentum"}
        return _apply(op, ("online", "momentum"), online, momentum)


def norm_mse_loss(x0, x1):
    """lightly's default WMSELoss loss_fn (2 - 2 mean cos)."""
    x0, x1 = F.normalize(x0), F.normalize(x1)
    return 2 - 2 * (x0 * x1).sum(dim=-1).mean()


class WMSELoss(nn.Module):
    """lightly WMSELoss: forward(input) with input (num_samples * N, D),
    view-major. The permutations come from torch.randperm as in lightly.
    The whitening's running statistics (inference only) are not kept."""

    def __init__(self, embedding_dim=128, momentum=0.01, eps=0.0,
                 track_running_stats=True, w_iter=1, w_size=256,
                 loss_fn=norm_mse_loss, num_samples=2,
                 gather_distributed=False):
        super().__init__()
        _no_distributed(gather_distributed)
        if loss_fn is not norm_mse_loss and \
                getattr(loss_fn, "__name__", "") != "norm_mse_loss":
            raise NotImplementedError("selfsup.torch.WMSELoss: only the default "
                                      "norm_mse_loss runs in C")
        if embedding_dim * 2 > w_size:
            raise ValueError(
                f"w_size is {w_size} but it should be at least twice the size "
                f"of embedding_dim which is {embedding_dim} to avoid instabiliy")
        self.embedding_dim = embedding_dim
        self.momentum = momentum
        self.eps = eps
        self.track_running_stats = track_running_stats
        self.w_iter = w_iter
        self.w_size = w_size
        self.num_samples = num_samples
        self.gather_distributed = gather_distributed

    def forward(self, input):
        if input.shape[0] % self.num_samples != 0:
            raise RuntimeError(
                f"input batch size is {input.shape[0]} but must be divisible "
                f"by num_samples which is {self.num_samples}")
        V = self.num_samples
        N = input.shape[0] // V
        if N < self.w_size:
            raise ValueError(
                f"batch size is {N} but must be greater than or equal to "
                f"w_size which is {self.w_size}")
        D = input.shape[1]
        perm = torch.stack([torch.randperm(N) for _ in range(self.w_iter)])
        perm = perm.to(torch.int64).contiguous().numpy()
        opts = _lib.make_opts("wmse", w_size=self.w_size, w_iter=self.w_iter,
                              eps=self.eps)

        def op(a):
            return _lib.Call("wmse", dict(z=a[0], perm=perm, V=V, N=N, D=D),
                             opts), {0: "z"}
        return _apply(op, ("input",), input.reshape(V, N, D))


# ---- predictive family ------------------------------------------------------

def _targets(target, name="target"):
    _check_device(target, name)
    if target.is_floating_point():
        raise NotImplementedError("selfsup.torch: class-probability targets are "
                                  "not supported; pass class indices")
    return target.reshape(-1).to(torch.int64).contiguous().numpy()


def _mean_only(reduction, who):
    if reduction != "mean":
        raise NotImplementedError("selfsup.torch.%s: only reduction='mean'"
                                  % who)


def _ce_opts(kind, ignore_index, label_smoothing, weight, name):
    """Options of the cross-entropy losses; w, the float32 class weights
    (or None), must outlive the call that reads opts."""
    opts = _lib.make_opts(kind, ignore_index=ignore_index,
                          label_smoothing=label_smoothing)
    w = None
    if weight is not None:
        w = _f32(weight, name)
        opts.class_weights = w.ctypes.data
    return opts, w


class MaskedCrossEntropyLoss(nn.Module):
    """Drop-in for torch.nn.CrossEntropyLoss (class-index targets,
    reduction='mean') with ignore_index, label_smoothing and weight. Unlike
    torch, a batch whose targets are all ignored gives 0, not NaN."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100,
                 reduce=None, reduction="mean", label_smoothing=0.0):
        super().__init__()
        if size_average is not None or reduce is not None:
            raise NotImplementedError("selfsup.torch.MaskedCrossEntropyLoss: "
                                      "use reduction= (size_average/reduce "
                                      "are deprecated)")
        _mean_only(reduction, "MaskedCrossEntropyLoss")
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        if input.dim() > 2:  # (N, C, d1, ...) as torch: classes on dim 1
            input = input.movedim(1, -1)
        V = input.shape[-1]
        logits = input.reshape(-1, V)
        T = logits.shape[0]
        tgt = _targets(target)
        opts, w = _ce_opts("mlm", self.ignore_index, self.label_smoothing,
                           self.weight, "weight")

        def op(a):
            return _lib.Call("mlm", dict(logits=a[0], targets=tgt, T=T, V=V,
                                         keep=w), opts), {0: "logits"}
        return _apply(op, ("input",), logits)


class FusedLinearCrossEntropyLoss(nn.Module):
    """Liger-style fused output projection + cross-entropy:
    forward(lin_weight (V, H), _input (..., H), target (...), bias=None)
    = CrossEntropyLoss(_input @ lin_weight.T + bias, target) without
    materialising the logits."""

    def __init__(self, ce_weight=None, ignore_index=-100, label_smoothing=0.0,
                 reduction="mean"):
        super().__init__()
        _mean_only(reduction, "FusedLinearCrossEntropyLoss")
        self.register_buffer("ce_weight", ce_weight)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.reduction = reduction

    def forward(self, lin_weight, _input, target, bias=None):
        V, H = lin_weight.shape
        hidden = _input.reshape(-1, H)
        T = hidden.shape[0]
        tgt = _targets(target)
        opts, w = _ce_opts("fused_ce", self.ignore_index,
                           self.label_smoothing, self.ce_weight, "ce_weight")
        tensors, names = [hidden, lin_weight], ["hidden", "weight"]
        if bias is not None:
            tensors.append(bias)
            names.append("bias")

        def op(a):
            v = dict(zip(names, a))
            return _lib.Call("fused_ce", dict(hidden=v["hidden"],
                                              weight=v["weight"],
                                              bias=v.get("bias"), targets=tgt,
                                              T=T, H=H, V=V, keep=w), opts), \
                {i: n for i, n in enumerate(names)}
        return _apply(op, tuple(names), *tensors)


class MAELoss(nn.Module):
    """MAE's forward_loss: forward(imgs (B, C, H, W), pred (B, L, p*p*C),
    mask (B, L), 1 = masked), MSE on the masked patches, per-patch
    normalised targets when norm_pix_loss. imgs get no gradient."""

    def __init__(self, patch_size=16, norm_pix_loss=True):
        super().__init__()
        self.patch_size = patch_size
        self.norm_pix_loss = norm_pix_loss

    def forward(self, imgs, pred, mask):
        _check_device(mask, "mask")
        B, C, Hi, Wi = imgs.shape
        m = (mask.reshape(B, -1) != 0).to(torch.uint8).contiguous().numpy()
        opts = _lib.make_opts("mae", norm_pix=int(self.norm_pix_loss))
        p = self.patch_size

        def op(a):
            return _lib.Call("mae", dict(pred=a[0], imgs=a[1], mask=m, B=B, C=C,
                                         Hi=Hi, Wi=Wi, p=p), opts), {0: "pred"}
        return _apply(op, ("pred", "imgs"), pred, imgs.detach())
