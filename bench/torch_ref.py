#!/usr/bin/env python3
"""PyTorch baselines for `selfsup bench` and `selfsup demo`.

Each loss is written the way its reference library writes it, in plain
PyTorch (fp32, CPU), so that selfsup's figures sit beside what users run
today:

  ntxent  lightly NTXentLoss (V = 2, no memory bank), code path of
          lightly/loss/ntx_ent_loss.py; V > 2: the SupCon form below with the
          sample index as label (= selfsup's multi-view NT-Xent), tau 0.5
  supcon  pytorch-metric-learning SupConLoss (CosineSimilarity,
          AvgNonZeroReducer), tau 0.1, views stacked with repeated labels
  moco    lightly NTXentLoss(memory_bank_size=K): positives q.k, negatives
          the bank only, tau 0.5; keys are stop-gradient (MoCo)
  clip    OpenCLIP ClipLoss (world_size 1), logit_scale = exp(t) learnable
  siglip  big_vision sigmoid loss (= OpenCLIP SigLipLoss), t and bias learnable
  dcl     lightly DCLLoss, tau 0.1; V > 2: mean over the pairs of views
          (selfsup's generalisation)
  dclw    lightly DCLWLoss, tau 0.1, sigma 0.5 (V = 2)

The other losses (negcos ... mae) import their float64 reference function
from tests/ref/<group>.py (written as lightly / DINOv2 / MAE / torch write
them) and run it in float32 on the inputs `selfsup bench` wrote; the arrays
and the sizes derived from --n/--d/--k/--views are listed in array_spec and
must match cli/losses.c.

Timing: forward and backward of `warmup` untimed then `reps` timed calls;
medians and the minimum. Gradient buffers exist before timing (backward
accumulates into them, like selfsup's). Peak extra memory, measured over the
timed calls (after the warmup's one-time set-up: thread pools, lazy
initialisation): reset VmHWM (write "5" to /proc/self/clear_refs), read
VmRSS, run, read VmHWM: the growth beyond inputs and gradients, as `selfsup
bench` measures it.

Output: one JSON line on stdout. Exit 3 when torch cannot be imported, 1
(with {"error": ...}) on any other failure.

usage: torch_ref.py --loss NAME --n N --d D [--views V] [--k K] [--threads T]
                    [--reps R] [--warmup W] [--inputs FILE | --seed S]
--inputs reads the arrays `selfsup bench` wrote (raw little-endian, in
order): stacked z (V,N,D) f32 [+ labels (N) i64 for supcon]; clip/siglip
a, b (N,D) f32; moco q, k (N,D), queue (K,D) f32.
"""
import argparse
import ctypes
import gc
import importlib
import json
import math
import os
import statistics
import sys
import time
import warnings

EXIT_NO_TORCH = 3
CLIP_LOG_SCALE = math.log(1 / 0.07)
SIGLIP_LOG_T, SIGLIP_BIAS = math.log(10.0), -10.0
CONTRASTIVE = ("ntxent", "supcon", "moco", "clip", "siglip", "dcl", "dclw")
# The other losses: the float64 references of tests/ref/<module>.py, written
# the way the reference library writes them, imported and run in float32.
# name: (module, arrays in `selfsup bench` order, see array_spec)
OTHER = {
    "negcos": "negcos", "barlow": "barlow", "vicreg": "vicreg", "tico": "tico",
    "wmse": "wmse", "hypersphere": "hypersphere", "koleo": "koleo", "mmcr": "mmcr",
    "empssl": "tcr", "dino": "dino", "ibot": "ibot", "swav": "swav", "msn": "msn",
    "pmsn": "msn", "mlm": "mlm", "fused_ce": "fused_ce", "recon": "recon", "mae": "mae",
}
LOSSES = CONTRASTIVE + tuple(OTHER)
REF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref")


# ---- the reference formulas ------------------------------------------------

def ntxent_lightly(out0, out1, temperature=0.5):
    """lightly NTXentLoss.forward, memory_bank_size=0, gather_distributed=False."""
    device = out0.device
    batch_size, _ = out0.shape
    out0 = F.normalize(out0, dim=1)
    out1 = F.normalize(out1, dim=1)
    out0_large, out1_large = out0, out1
    diag_mask = torch.eye(batch_size, device=device, dtype=torch.bool)
    logits_00 = torch.einsum("nc,mc->nm", out0, out0_large) / temperature
    logits_01 = torch.einsum("nc,mc->nm", out0, out1_large) / temperature
    logits_10 = torch.einsum("nc,mc->nm", out1, out0_large) / temperature
    logits_11 = torch.einsum("nc,mc->nm", out1, out1_large) / temperature
    logits_00 = logits_00[~diag_mask].view(batch_size, -1)
    logits_11 = logits_11[~diag_mask].view(batch_size, -1)
    logits_0100 = torch.cat([logits_01, logits_00], dim=1)
    logits_1011 = torch.cat([logits_10, logits_11], dim=1)
    logits = torch.cat([logits_0100, logits_1011], dim=0)
    labels = torch.arange(batch_size, device=device, dtype=torch.long).repeat(2)
    return F.cross_entropy(logits, labels, reduction="mean")


def supcon_pml(embeddings, labels, temperature=0.1):
    """pytorch-metric-learning SupConLoss: CosineSimilarity matrix, all
    pairs from labels, masked logsumexp, AvgNonZeroReducer."""
    x = F.normalize(embeddings, dim=1)
    mat = x @ x.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    pos_mask = (same & ~eye).to(mat.dtype)
    neg_mask = (~same).to(mat.dtype)
    mat = mat / temperature
    mat_max, _ = mat.max(dim=1, keepdim=True)
    mat = mat - mat_max.detach()
    keep = (pos_mask + neg_mask).bool()
    denominator = torch.logsumexp(
        mat.masked_fill(~keep, torch.finfo(mat.dtype).min), dim=1, keepdim=True)
    denominator = denominator.masked_fill(~keep.any(dim=1, keepdim=True), 0)
    log_prob = mat - denominator
    mean_log_prob_pos = (pos_mask * log_prob).sum(dim=1) / (
        pos_mask.sum(dim=1) + torch.finfo(mat.dtype).tiny)
    losses = -mean_log_prob_pos
    nonzero = losses > 0
    return losses[nonzero].mean() if nonzero.any() else torch.sum(losses * 0)


def moco_lightly(q, k, queue, temperature=0.5):
    """lightly NTXentLoss with a memory bank: the bank holds normalised keys
    as (D, K); no in-batch negatives."""
    out0 = F.normalize(q, dim=1)
    out1 = F.normalize(k, dim=1)
    negatives = queue.T
    sim_pos = torch.einsum("nc,nc->n", out0, out1).unsqueeze(-1)
    sim_neg = torch.einsum("nc,ck->nk", out0, negatives)
    logits = torch.cat([sim_pos, sim_neg], dim=1) / temperature
    labels = torch.zeros(logits.shape[0], dtype=torch.long)
    return F.cross_entropy(logits, labels)


def clip_openclip(image, text, log_scale):
    """OpenCLIP ClipLoss.forward, world_size 1; the model normalises the
    features and passes logit_scale.exp()."""
    image_features = F.normalize(image, dim=-1)
    text_features = F.normalize(text, dim=-1)
    logit_scale = log_scale.exp()
    logits_per_image = logit_scale * image_features @ text_features.T
    logits_per_text = logit_scale * text_features @ image_features.T
    labels = torch.arange(logits_per_image.shape[0], dtype=torch.long)
    return (F.cross_entropy(logits_per_image, labels) +
            F.cross_entropy(logits_per_text, labels)) / 2


def siglip_big_vision(image, text, log_t, bias):
    """big_vision sigmoid loss: logits = zimg ztxt^T e^t' + b, labels 2I - 1,
    mean over images of the summed -log sigmoid."""
    zimg = F.normalize(image, dim=-1)
    ztxt = F.normalize(text, dim=-1)
    logits = zimg @ ztxt.T * log_t.exp() + bias
    n = logits.shape[0]
    labels = 2 * torch.eye(n, dtype=logits.dtype) - 1
    return -F.logsigmoid(labels * logits).sum(dim=-1).mean()


def negative_mises_fisher_weights(out0, out1, sigma=0.5):
    """lightly: DCLW weights, on detached embeddings."""
    similarity = torch.einsum("nm,nm->n", out0.detach(), out1.detach()) / sigma
    return 2 - out0.shape[0] * F.softmax(similarity, dim=0)


def dcl_lightly(out0, out1, temperature=0.1, weighted=False, sigma=0.5):
    """lightly DCLLoss / DCLWLoss.forward, gather_distributed=False."""
    out0 = F.normalize(out0, dim=1)
    out1 = F.normalize(out1, dim=1)

    def one_side(a, b):
        batch_size = a.shape[0]
        diag_mask = torch.eye(batch_size, dtype=torch.bool)
        sim_00 = torch.einsum("nc,mc->nm", a, a) / temperature
        sim_01 = torch.einsum("nc,mc->nm", a, b) / temperature
        positive_loss = -sim_01[diag_mask]
        if weighted:
            positive_loss = positive_loss * negative_mises_fisher_weights(a, b, sigma)
        sim_00 = sim_00[~diag_mask].view(batch_size, -1)
        sim_01 = sim_01[~diag_mask].view(batch_size, -1)
        negative_loss_00 = torch.logsumexp(sim_00, dim=1)
        negative_loss_01 = torch.logsumexp(sim_01, dim=1)
        return (positive_loss + negative_loss_00 + negative_loss_01).mean()

    return 0.5 * (one_side(out0, out1) + one_side(out1, out0))


# ---- the other losses --------------------------------------------------------

def gcd16(d):
    return math.gcd(d, 16)


def array_spec(args):
    """[(name, dtype, shape or callable(arrays) -> shape, grad)] in the order
    cli/losses.c writes them (its arrays_<loss> functions)."""
    V, N, D, K = args.views, args.n, args.d, args.k
    f, i, u = "<f4", "<i8", "u1"
    nd = (N, D)
    if args.loss == "negcos":
        return [("p1", f, nd, 1), ("p2", f, nd, 1), ("z1", f, nd, 0), ("z2", f, nd, 0)]
    if args.loss in ("barlow", "vicreg", "tico", "hypersphere"):
        return [("a", f, nd, 1), ("b", f, nd, 1)]
    if args.loss in ("wmse", "empssl"):
        return [("z", f, (V, N, D), 1)]
    if args.loss == "koleo":
        return [("x", f, nd, 1)]
    if args.loss == "mmcr":
        return [("online", f, (N, V, D), 1), ("momentum", f, (N, V, D), 0)]
    if args.loss == "dino":
        return [("teacher", f, (2, N, K), 0), ("student", f, (V, N, K), 1),
                ("center", f, (K,), 0)]
    if args.loss == "ibot":
        m = lambda a: (int(a["mask"].astype(bool).sum()), K)
        return [("mask", u, nd, 0), ("teacher", f, m, 0), ("student", f, m, 1),
                ("center", f, (K,), 0)]
    if args.loss == "swav":
        return [("high", f, (2, N, K), 1), ("low", f, (V - 2, N, K), 1)]
    if args.loss in ("msn", "pmsn"):
        return [("anchors", f, (V, N, D), 1), ("targets", f, nd, 0),
                ("prototypes", f, (K, D), 1)]
    if args.loss == "mlm":
        return [("logits", f, (N, K), 1), ("targets", i, (N,), 0)]
    if args.loss == "fused_ce":
        return [("hidden", f, nd, 1), ("weight", f, (K, D), 1), ("bias", f, (K,), 1),
                ("targets", i, (N,), 0)]
    if args.loss == "recon":
        return [("pred", f, (N * D,), 1), ("target", f, (N * D,), 0)]
    if args.loss == "mae":
        p = gcd16(D)
        L = (D // p) ** 2
        return [("imgs", f, (N, 3, D, D), 0), ("pred", f, (N, L, p * p * 3), 1),
                ("mask", u, (N, L), 0)]
    raise ValueError(args.loss)


def read_arrays(args):
    spec = array_spec(args)
    out = {}
    if args.inputs is None:  # random inputs of the right shapes (standalone use)
        rng = np.random.default_rng(args.seed)
        for name, dt, shape, _ in spec:
            shape = shape(out) if callable(shape) else shape
            if dt == "u1":
                out[name] = (rng.random(shape) < 0.5).astype(np.uint8)
            elif dt == "<i8":
                out[name] = rng.integers(0, args.k, shape)
            else:
                out[name] = rng.standard_normal(shape, dtype=np.float32)
        return out
    with open(args.inputs, "rb") as fh:
        for name, dt, shape, _ in spec:
            shape = shape(out) if callable(shape) else shape
            count = int(np.prod(shape))
            out[name] = np.fromfile(fh, dtype=np.dtype(dt), count=count).reshape(shape)
            if out[name].size != count:
                raise ValueError(f"{args.inputs}: too short for {name} {shape}")
    return out


def import_ref(name):
    """tests/ref/<name>.py; the references set float64 as the default dtype
    on import: back to float32, the precision timed here."""
    if REF_DIR not in sys.path:
        sys.path.insert(0, REF_DIR)
    mod = importlib.import_module(name)
    torch.set_default_dtype(torch.float32)
    return mod


def build_other(args):
    """(leaves that receive gradients, closure computing the loss)."""
    spec = array_spec(args)
    arrays = read_arrays(args)
    t = {}
    leaves = []
    for name, dt, _, grad in spec:
        x = torch.from_numpy(np.ascontiguousarray(arrays[name]))
        if grad:
            x = x.float().requires_grad_(True)
            leaves.append(x)
        t[name] = x
    ref = import_ref(OTHER[args.loss])
    V, N, D, K = args.views, args.n, args.d, args.k
    loss = args.loss
    if loss == "negcos":
        fn = lambda: ref.negcos_sym_loss(t["p1"], t["p2"], t["z1"], t["z2"])
    elif loss == "barlow":
        fn = lambda: ref.barlow_loss(t["a"], t["b"])
    elif loss == "vicreg":
        fn = lambda: ref.vicreg_loss(t["a"], t["b"])
    elif loss == "tico":  # zero covariance state, not updated (as cli/losses.c)
        c_old = torch.zeros(D, D)
        fn = lambda: ref.lightly_tico_step(t["a"], t["b"], c_old, 0.9, 8.0)[0].mean()
    elif loss == "wmse":
        w_size = 256 if N % 256 == 0 and 256 >= 2 * D else N
        perms = torch.arange(N).view(1, N)
        fn = lambda: ref.lightly_wmse(t["z"].view(V * N, D), V, w_size, 1, 0.0, perms)
    elif loss == "hypersphere":
        fn = lambda: ref.lightly_hypersphere(t["a"], t["b"])
    elif loss == "koleo":
        fn = lambda: ref.dinov2_koleo(t["x"])[0].mean()
    elif loss == "mmcr":
        fn = lambda: ref.lightly_mmcr(t["online"], t["momentum"])
    elif loss == "empssl":
        fn = lambda: ref.empssl_loss(t["z"])
    elif loss == "dino":
        fn = lambda: ref.lightly_dino(list(t["teacher"]), list(t["student"]),
                                      t["center"], 0.04, 0.1)
    elif loss == "ibot":
        mask = t["mask"].bool()
        fn = lambda: ref.lightly_ibot(t["teacher"], t["student"], mask, t["center"],
                                      0.04, 0.1)[0]
    elif loss == "swav":
        fn = lambda: ref.lightly_swav(list(t["high"]), list(t["low"]), None, 0.1, 3,
                                      0.05, ref.lightly_sinkhorn)[0]
    elif loss in ("msn", "pmsn"):
        prior = "uniform" if loss == "msn" else "power_law"
        fn = lambda: ref.lightly_msn(t["anchors"].reshape(V * N, D), t["targets"],
                                     t["prototypes"], prior=prior)[0]
    elif loss == "mlm":
        fn = lambda: ref.mlm_loss(t["logits"], t["targets"])
    elif loss == "fused_ce":
        fn = lambda: ref.fused_ce_loss(t["hidden"], t["weight"], t["bias"], t["targets"])
    elif loss == "recon":
        fn = lambda: ref.recon_loss(0, 0, t["pred"], t["target"], None)
    else:  # mae
        mask = t["mask"].float()
        fn = lambda: ref.mae_loss(t["imgs"], t["pred"], mask, gcd16(D))
    return leaves, fn


# ---- inputs ------------------------------------------------------------------

def read_inputs(args):
    """The arrays in `selfsup bench` order, as numpy arrays (or random ones)."""
    V, N, D, K = args.views, args.n, args.d, args.k
    f32, i64 = np.dtype("<f4"), np.dtype("<i8")
    if args.loss in ("ntxent", "supcon", "dcl", "dclw"):
        spec = [("z", f32, (V, N, D))]
        if args.loss == "supcon":
            spec.append(("labels", i64, (N,)))
    elif args.loss == "moco":
        spec = [("q", f32, (N, D)), ("k", f32, (N, D)), ("queue", f32, (K, D))]
    else:
        spec = [("a", f32, (N, D)), ("b", f32, (N, D))]
    out = {}
    if args.inputs is None:
        rng = np.random.default_rng(args.seed)
        for name, dt, shape in spec:
            out[name] = (rng.integers(0, max(N // 4, 1), shape) if dt == i64
                         else rng.standard_normal(shape, dtype=np.float32))
        if "queue" in out:
            out["queue"] /= np.linalg.norm(out["queue"], axis=1, keepdims=True)
        return out
    with open(args.inputs, "rb") as f:
        for name, dt, shape in spec:
            count = int(np.prod(shape))
            out[name] = np.fromfile(f, dtype=dt, count=count).reshape(shape)
            if out[name].size != count:
                raise ValueError(f"{args.inputs}: too short for {name} {shape}")
    return out


def build(args, arrays):
    """(leaves that receive gradients, closure computing the loss)."""
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    grad = lambda x: x.float().requires_grad_(True)
    if args.loss in ("ntxent", "supcon", "dcl", "dclw"):
        z = grad(t["z"])
        V, N, D = z.shape
        if args.loss == "ntxent" and V == 2:
            return [z], lambda: ntxent_lightly(z[0], z[1])
        if args.loss in ("dcl", "dclw"):
            w = args.loss == "dclw"
            pairs = [(v, u) for v in range(V) for u in range(v + 1, V)]
            return [z], lambda: sum(dcl_lightly(z[v], z[u], weighted=w)
                                    for v, u in pairs) / len(pairs)
        labels = (torch.arange(N) if args.loss == "ntxent" else t["labels"]).repeat(V)
        tau = 0.5 if args.loss == "ntxent" else 0.1
        return [z], lambda: supcon_pml(z.view(V * N, D), labels, tau)
    if args.loss == "moco":
        q, k, queue = grad(t["q"]), t["k"], t["queue"]
        return [q], lambda: moco_lightly(q, k, queue)
    a, b = grad(t["a"]), grad(t["b"])
    if args.loss == "clip":
        s = grad(torch.tensor(CLIP_LOG_SCALE))
        return [a, b, s], lambda: clip_openclip(a, b, s)
    lt, bias = grad(torch.tensor(SIGLIP_LOG_T)), grad(torch.tensor(SIGLIP_BIAS))
    return [a, b, lt, bias], lambda: siglip_big_vision(a, b, lt, bias)


# ---- measurement ---------------------------------------------------------------

def status_kib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def settle_malloc():
    """As selfsup bench does: fix glibc's mmap threshold, so that freed large
    blocks go back to the OS rather than hide the next call's growth, and
    return what is free now."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def mem_begin():
    """VmRSS after resetting VmHWM, or None when that is not possible."""
    settle_malloc()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return status_kib("VmRSS")


def run(args):
    settle_malloc()
    torch.set_num_threads(args.threads)
    if args.loss in OTHER:
        leaves, loss_fn = build_other(args)
    else:
        leaves, loss_fn = build(args, read_inputs(args))
    for x in leaves:
        x.grad = torch.zeros_like(x)  # backward accumulates into these
    fwd, bwd = [], []
    base = None
    for r in range(-args.warmup, args.reps):
        if r == 0:  # the memory window: the timed calls, after one-time set-up
            gc.collect()
            base = mem_begin()
        t0 = time.perf_counter()
        loss = loss_fn()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        if r >= 0:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
        value = loss.item()
        del loss
    peak = status_kib("VmHWM")
    extra = -1 if base is None or peak is None else max(peak - base, 0) * 1024
    tot = [a + b for a, b in zip(fwd, bwd)]
    return {"name": args.loss, "torch": torch.__version__, "threads": args.threads,
            "fwd_median_s": statistics.median(fwd), "bwd_median_s": statistics.median(bwd),
            "total_median_s": statistics.median(tot), "total_min_s": min(tot),
            "extra_bytes": extra, "loss": value}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--loss", required=True, choices=LOSSES)
    p.add_argument("--views", type=int, default=2)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--d", type=int, required=True)
    p.add_argument("--k", type=int, default=16384)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--inputs", default=None)
    args = p.parse_args(argv)
    if min(args.views, args.n, args.d, args.k, args.threads, args.reps) < 1 or args.warmup < 0:
        p.error("sizes, threads and reps must be >= 1, warmup >= 0")
    if args.loss in ("moco", "clip", "siglip", "dclw") and args.views != 2:
        p.error(f"{args.loss} takes 2 views")
    if args.loss in ("dino", "swav") and args.views < 2:
        p.error(f"{args.loss} takes at least 2 views")
    return args


def main(argv):
    global torch, F, np
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    try:
        import numpy as np
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(json.dumps({"error": f"cannot import torch: {e}"}))
        return EXIT_NO_TORCH
    try:
        result = run(args)
    except (Exception, MemoryError) as e:  # reported to the caller, not raised
        print(json.dumps({"error": f"{type(e).__name__}: {e}".replace('"', "'")}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
