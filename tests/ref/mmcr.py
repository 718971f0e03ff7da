"""PyTorch float64 reference for ss_mmcr (tests/test_mmcr.c).

lightly_mmcr is a replica of lightly's MMCRLoss.forward(online, momentum):
z = cat([online, momentum], dim=1), c = z.mean(1),
loss = -sum svd(c).S + lmda * sum svd(z).S / B; mmcr_single the same with
online only (momentum = NULL). Gradients by autograd through
torch.linalg.svd. Fields c<k>_: B, K, D, lmda, has_momentum, online,
momentum, loss, donline, dmomentum. Usage: mmcr.py [--seed S] [--out DIR].
"""
import numpy as np
import torch
from torch.linalg import svd

import fixture

torch.set_default_dtype(torch.float64)


def lightly_mmcr(online, momentum, lmda=5e-3):
    B = online.shape[0]
    z = torch.cat([online, momentum], dim=1)
    c = torch.mean(z, dim=1)
    _, S_z, _ = svd(z)
    _, S_c, _ = svd(c)
    return -1.0 * torch.sum(S_c) + lmda * torch.sum(S_z) / B


def mmcr_single(online, lmda=5e-3):
    B = online.shape[0]
    c = torch.mean(online, dim=1)
    _, S_z, _ = svd(online)
    _, S_c, _ = svd(c)
    return -1.0 * torch.sum(S_c) + lmda * torch.sum(S_z) / B


def make_case(rng, B, K, D, lmda, has_momentum):
    base = rng.standard_normal((B, 1, D))
    on = torch.tensor(base + 0.5 * rng.standard_normal((B, K, D)),
                      requires_grad=True)
    mo = torch.tensor(base + 0.5 * rng.standard_normal((B, K, D)),
                      requires_grad=True)
    if has_momentum:
        loss = lightly_mmcr(on, mo, lmda)
    else:
        loss = mmcr_single(on, lmda)
    loss.backward()
    dmo = mo.grad if has_momentum else torch.zeros_like(mo)
    return {"B": [B], "K": [K], "D": [D], "lmda": [lmda],
            "has_momentum": [has_momentum], "online": on, "momentum": mo,
            "loss": [loss.item()], "donline": on.grad, "dmomentum": dmo}


def main():
    args = fixture.parse_args(default_seed=20261209)
    rng = np.random.default_rng(args.seed)

    def n(lo, hi):
        return int(rng.integers(lo, hi + 1))

    specs = [  # (B, K, D, lmda, has_momentum)
        (n(3, 10), 2, n(8, 16), 5e-3, 1),    # lightly default, B < D
        (n(12, 20), 2, n(3, 6), 5e-3, 1),    # B > D
        (n(3, 8), n(2, 4), n(4, 10), 0.5, 1),
        (n(3, 8), n(2, 4), n(4, 10), 0.1, 0),  # no momentum branch
        (1, 3, n(4, 8), 1.0, 0),             # B = 1
        (n(3, 6), 1, 1, 0.2, 1),             # D = 1
    ]
    entries = {"ncases": [len(specs)]}
    for k, spec in enumerate(specs):
        for name, value in make_case(rng, *spec).items():
            entries["c%d_%s" % (k, name)] = value
    fixture.write(args.out, "mmcr", entries)


if __name__ == "__main__":
    main()
