"""PyTorch float64 reference for ss_koleo (tests/test_koleo.c).

dinov2_koleo is a replica of DINOv2's KoLeoLoss (dinov2/loss/koleo_loss.py):
F.normalize(eps), nearest neighbour by inner product with the diagonal
filled with -1, nn.PairwiseDistance(2, eps) (eps added to the difference),
-log(d + eps).mean(). Per-sample losses are the terms of that mean.
Fields c<k>_: N, D, eps, x, loss, losses, nn, dx.
Usage: koleo.py [--seed S] [--out DIR].
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import fixture

torch.set_default_dtype(torch.float64)


def dinov2_koleo(x, eps=1e-8):
    """Per-sample losses and neighbour indices of DINOv2's KoLeoLoss."""
    pdist = nn.PairwiseDistance(2, eps=eps)
    x = F.normalize(x, eps=eps, p=2, dim=-1)
    with torch.no_grad():
        dots = torch.mm(x, x.t())
        n = x.shape[0]
        dots.view(-1)[:: (n + 1)].fill_(-1)
        _, I = torch.max(dots, dim=1)
    distances = pdist(x, x[I])
    return -torch.log(distances + eps), I


def make_case(rng, N, D, eps, dup):
    x = rng.standard_normal((N, D))
    if dup:  # near-duplicate rows: small distances (1e-2; at 1e-3 the
        # float32 rounding of x alone moves the gradient by ~1e-4)
        x[1] = x[0] + 1e-2 * rng.standard_normal(D)
    x = torch.tensor(x, requires_grad=True)
    losses, I = dinov2_koleo(x, eps)
    loss = losses.mean()
    loss.backward()
    return {"N": [N], "D": [D], "eps": [eps], "x": x, "loss": [loss.item()],
            "losses": losses, "nn": I, "dx": x.grad}


def main():
    args = fixture.parse_args(default_seed=20261207)
    rng = np.random.default_rng(args.seed)

    def n(lo, hi):
        return int(rng.integers(lo, hi + 1))

    specs = [  # (N, D, eps, dup)
        (n(3, 16), n(2, 16), 1e-8, 0),   # DINOv2 default
        (2, n(2, 6), 1e-8, 0),           # N = 2: each is the other's neighbour
        (n(3, 10), 2, 1e-8, 0),
        (n(20, 40), n(3, 8), 1e-8, 0),
        (n(4, 10), n(3, 8), 1e-8, 1),    # near duplicates
        (n(4, 10), n(3, 8), 1e-3, 0),    # larger eps
    ]
    entries = {"ncases": [len(specs)]}
    for k, spec in enumerate(specs):
        for name, value in make_case(rng, *spec).items():
            entries["c%d_%s" % (k, name)] = value
    fixture.write(args.out, "koleo", entries)


if __name__ == "__main__":
    main()
