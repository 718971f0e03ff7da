"""PyTorch float64 reference for ss_hypersphere (tests/test_hypersphere.c).

lightly_hypersphere is a replica of lightly's HypersphereLoss.forward;
stable_hypersphere is the same loss with the uniformity term as a
log-sum-exp (what selfsup computes). Cases with large t use the stable form
(lightly's exp().mean().log() underflows to -inf there); the others assert
both agree. Fields c<k>_: N, D, t, lam, alpha, za, zb, loss, dza, dzb.
Usage: hypersphere.py [--seed S] [--out DIR].
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

import fixture

torch.set_default_dtype(torch.float64)


def lightly_hypersphere(z_a, z_b, t=1.0, lam=1.0, alpha=2.0):
    x = F.normalize(z_a)
    y = F.normalize(z_b)

    def lalign(x, y):
        return (x - y).norm(dim=1).pow(alpha).mean()

    def lunif(x):
        sq_pdist = torch.pdist(x, p=2).pow(2)
        return sq_pdist.mul(-t).exp().mean().log()

    return lalign(x, y) + lam * (lunif(x) + lunif(y)) / 2


def stable_hypersphere(z_a, z_b, t=1.0, lam=1.0, alpha=2.0):
    x = F.normalize(z_a)
    y = F.normalize(z_b)

    def lunif(x):
        s = -t * torch.pdist(x, p=2).pow(2)
        return torch.logsumexp(s, 0) - math.log(s.numel())

    align = (x - y).norm(dim=1).pow(alpha).mean()
    return align + lam * (lunif(x) + lunif(y)) / 2


def make_case(rng, N, D, t, lam, alpha, scale):
    za = torch.tensor(rng.standard_normal((N, D)) * scale, requires_grad=True)
    zb = torch.tensor(rng.standard_normal((N, D)) * scale + za.detach().numpy(),
                      requires_grad=True)
    loss = stable_hypersphere(za, zb, t, lam, alpha)
    ref = lightly_hypersphere(za.detach(), zb.detach(), t, lam, alpha)
    if torch.isfinite(ref):
        assert abs(ref.item() - loss.item()) <= 1e-9 * max(1, abs(ref.item()))
    loss.backward()
    return {"N": [N], "D": [D], "t": [t], "lam": [lam], "alpha": [alpha],
            "za": za, "zb": zb, "loss": [loss.item()], "dza": za.grad,
            "dzb": zb.grad}


def main():
    args = fixture.parse_args(default_seed=20261206)
    rng = np.random.default_rng(args.seed)

    def n(lo, hi):
        return int(rng.integers(lo, hi + 1))

    specs = [  # (N, D, t, lam, alpha, scale)
        (n(3, 12), n(2, 16), 1.0, 1.0, 2.0, 1.0),   # lightly defaults
        (2, n(2, 6), 1.0, 1.0, 2.0, 1.0),           # one pair
        (n(3, 10), 1, 1.0, 1.0, 2.0, 1.0),          # D = 1
        (n(5, 12), n(3, 8), 2.0, 0.5, 1.0, 3.0),    # alpha = 1
        (n(5, 12), n(3, 8), 0.3, 2.0, 3.0, 0.2),
        (n(5, 12), n(3, 8), 400.0, 1.0, 2.0, 1.0),  # lightly underflows
    ]
    entries = {"ncases": [len(specs)]}
    for k, spec in enumerate(specs):
        for name, value in make_case(rng, *spec).items():
            entries["c%d_%s" % (k, name)] = value
    fixture.write(args.out, "hypersphere", entries)


if __name__ == "__main__":
    main()
