"""PyTorch float64 reference for the engine's optimisers, schedules and EMA
(train/optim.c).

One small "model" of five tensors (flags: 0 decayed weight, 1 bias/norm =
no decay, 2 frozen buffer) gets T steps of random gradients. Each config
runs torch.optim.SGD / torch.optim.AdamW with two param groups (decay and
weight_decay=0) or solo-learn's LARS, and stores the flat parameters after
every step: <opt>.<i>.cfg and <opt>.<i>.traj (T, n).
"""
import math

import numpy as np
import torch

import fixture

SIZES = [12, 4, 8, 3, 3]
FLAGS = [0, 1, 0, 1, 2]
T = 6


class LARS(torch.optim.Optimizer):
    """solo-learn's LARS (solo/utils/lars.py), dampening 0, nesterov off."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, eta=1e-3,
                 eps=1e-8, clip_lr=False, exclude_bias_n_norm=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      eta=eta, eps=eps, clip_lr=clip_lr,
                                      exclude_bias_n_norm=exclude_bias_n_norm))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            wd, mom = group["weight_decay"], group["momentum"]
            for p in group["params"]:
                d_p = p.grad
                p_norm, g_norm = torch.norm(p.data), torch.norm(p.grad.data)
                if p.ndim != 1 or not group["exclude_bias_n_norm"]:
                    if p_norm != 0 and g_norm != 0:
                        lars_lr = p_norm / (g_norm + p_norm * wd + group["eps"])
                        lars_lr *= group["eta"]
                        if group["clip_lr"]:
                            lars_lr = min(lars_lr / group["lr"], 1)
                        d_p = d_p.add(p, alpha=wd)
                        d_p *= lars_lr
                if mom != 0:
                    st = self.state[p]
                    if "momentum_buffer" not in st:
                        buf = st["momentum_buffer"] = torch.clone(d_p).detach()
                    else:
                        buf = st["momentum_buffer"]
                        buf.mul_(mom).add_(d_p)
                    d_p = buf
                p.add_(d_p, alpha=-group["lr"])


def make_params(p0):
    """Tensors of the model; 1-d tensors are the flag-1 ones (LARS exclusion
    in solo-learn is by ndim)."""
    out, at = [], 0
    for size, flag in zip(SIZES, FLAGS):
        v = torch.tensor(p0[at:at + size])
        if flag == 0:
            v = v.reshape(2, size // 2)
        out.append(v.clone().requires_grad_(True))
        at += size
    return out


def run(p0, grads, make_opt):
    params = make_params(p0)
    opt = make_opt(params)
    traj = []
    for g in grads:
        at = 0
        for p, size in zip(params, SIZES):
            p.grad = torch.tensor(g[at:at + size]).reshape(p.shape)
            at += size
        opt.step()
        traj.append(np.concatenate([p.detach().numpy().ravel() for p in params]))
    return np.stack(traj)


def groups(params, wd):
    decay = [p for p, f in zip(params, FLAGS) if f == 0]
    nodecay = [p for p, f in zip(params, FLAGS) if f == 1]
    return [dict(params=decay, weight_decay=wd), dict(params=nodecay, weight_decay=0.0)]


def main():
    args = fixture.parse_args(default_seed=6)
    rng = np.random.default_rng(args.seed)
    n = sum(SIZES)
    p0 = rng.normal(size=n)
    grads = rng.normal(size=(T, n)) * rng.uniform(0.1, 2)
    grads[0, 12:16] = 0.0  # a zero gradient (LARS skips its scaling)
    out = {"arena.sizes": SIZES, "arena.flags": FLAGS, "p0": p0, "grads": grads}

    for i in range(4):
        lr = rng.uniform(0.01, 0.3)
        mom = [0.9, 0.9, 0.8, 0.0][i]
        damp = [0.0, 0.0, 0.1, 0.0][i]
        wd = rng.uniform(0.0, 0.1)
        nest = [0, 1, 0, 0][i]
        traj = run(p0, grads, lambda ps: torch.optim.SGD(
            groups(ps, wd), lr=lr, momentum=mom, dampening=damp, nesterov=bool(nest)))
        out["sgd.%d.cfg" % i] = [lr, mom, damp, wd, nest]
        out["sgd.%d.traj" % i] = traj

    for i in range(2):
        lr = rng.uniform(1e-3, 5e-2)
        b1, b2 = [(0.9, 0.999), (0.8, 0.95)][i]
        eps = [1e-8, 1e-6][i]
        wd = rng.uniform(0.01, 0.2)
        traj = run(p0, grads, lambda ps: torch.optim.AdamW(
            groups(ps, wd), lr=lr, betas=(b1, b2), eps=eps))
        out["adamw.%d.cfg" % i] = [lr, b1, b2, eps, wd]
        out["adamw.%d.traj" % i] = traj

    for i in range(3):
        lr = rng.uniform(0.1, 1.0)
        mom = [0.9, 0.9, 0.0][i]
        wd = rng.uniform(1e-6, 1e-3) if i != 2 else 0.05
        eta = [0.02, 1e-3, 0.1][i]
        clip = [0, 1, 1][i]
        excl = [1, 0, 1][i]
        trainable = lambda ps: [p for p, f in zip(ps, FLAGS) if f != 2]
        traj = run(p0, grads, lambda ps: LARS(
            trainable(ps), lr=lr, momentum=mom, weight_decay=wd, eta=eta, eps=1e-8,
            clip_lr=bool(clip), exclude_bias_n_norm=bool(excl)))
        out["lars.%d.cfg" % i] = [lr, mom, wd, eta, 1e-8, clip, excl]
        out["lars.%d.traj" % i] = traj

    # Schedules, written from their definitions (solo-learn
    # LinearWarmupCosineAnnealingLR stepped per iteration; MomentumUpdater).
    warm, total = int(rng.integers(0, 5)), int(rng.integers(6, 15))
    s0, base, fin = 1e-3, rng.uniform(0.1, 1.0), 1e-4
    lrs = []
    for k in range(total + 3):
        if k < warm:
            lrs.append(s0 + (base - s0) * k / warm)
        elif k >= total:
            lrs.append(fin)
        else:
            lrs.append(fin + (base - fin) * 0.5 * (1 + math.cos(math.pi * (k - warm) / (total - warm))))
    out["sched.lr.cfg"] = [warm, total, s0, base, fin]
    out["sched.lr.values"] = lrs
    tb, tf = 0.99, 1.0
    taus = [tf - (tf - tb) * (math.cos(math.pi * k / total) + 1) / 2 for k in range(total + 1)]
    out["sched.tau.cfg"] = [total, tb, tf]
    out["sched.tau.values"] = taus

    # EMA: three updates of a target towards a moving online network.
    tgt, onl = torch.tensor(rng.normal(size=n)), torch.tensor(rng.normal(size=(3, n)))
    ms = [0.99, 0.9, 0.5]
    out["ema.target0"], out["ema.online"], out["ema.m"] = tgt.clone(), onl, ms
    for k in range(3):
        tgt = tgt * ms[k] + onl[k] * (1.0 - ms[k])
    out["ema.target"] = tgt
    print(fixture.write(args.out, "optim", out))


if __name__ == "__main__":
    main()
