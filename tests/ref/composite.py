"""PyTorch float64 reference for ss_composite (tests/test_composite.c).

A composite is sum_t w_t * loss_t over shared tensors; the reference builds
it from the per-loss references of this directory (lightly NT-Xent, MAE's
forward_loss, lightly Barlow Twins and VICReg, torch CrossEntropyLoss) and
takes one autograd pass through the weighted sum, so shared z gets the sum
of the terms' gradients.
Cases c<k>_: kind (0: ntxent+mae, 1: barlow+vicreg, 2: mlm+ntxent), w (2),
temperature, N, D, z (2, N, D), values (2), loss, dz, and for kind 0:
B, C, H, W, p, imgs, pred, mask, dpred; kind 2: T, Vv, logits, targets,
dlogits.
Usage: composite.py [--seed S] [--out DIR].
"""
import numpy as np
import torch

import fixture
from barlow import barlow_loss
from mae import mae_loss
from mlm import mlm_loss
from ntxent import lightly_ntxent
from vicreg import vicreg_loss

torch.set_default_dtype(torch.float64)


def make_case(rng, kind, N, D):
    w = [float(rng.uniform(0.1, 2.0)), float(rng.uniform(0.1, 2.0))]
    temp = float(rng.uniform(0.1, 0.6))
    z = torch.tensor(rng.standard_normal((2, N, D)), requires_grad=True)
    e = {"kind": [kind], "w": w, "temperature": [temp], "N": [N], "D": [D],
         "z": z}
    ntx = lambda: lightly_ntxent(z[0], z[1], temp).mean()
    if kind == 0:
        B, C, p = int(rng.integers(1, 4)), int(rng.integers(1, 4)), 2
        H, W = 2 * int(rng.integers(1, 4)), 2 * int(rng.integers(1, 4))
        L, P = (H // p) * (W // p), p * p * C
        imgs = torch.tensor(rng.standard_normal((B, C, H, W)))
        pred = torch.tensor(rng.standard_normal((B, L, P)), requires_grad=True)
        mask = torch.tensor((rng.random((B, L)) < 0.75).astype(np.float64))
        mask[0, 0] = 1
        vals = [ntx(), mae_loss(imgs, pred, mask, p, True)]
        e.update({"B": [B], "C": [C], "H": [H], "W": [W], "p": [p],
                  "imgs": imgs, "pred": pred, "mask": mask.long()})
    elif kind == 1:
        vals = [barlow_loss(z[0], z[1]), vicreg_loss(z[0], z[1])]
    else:
        T, Vv = int(rng.integers(3, 12)), int(rng.integers(2, 20))
        logits = torch.tensor(2 * rng.standard_normal((T, Vv)),
                              requires_grad=True)
        targets = torch.tensor(rng.integers(0, Vv, T))
        targets[rng.random(T) < 0.3] = -100
        targets[0] = 0
        vals = [mlm_loss(logits, targets), ntx()]
        e.update({"T": [T], "Vv": [Vv], "logits": logits,
                  "targets": targets})
    loss = w[0] * vals[0] + w[1] * vals[1]
    loss.backward()
    e.update({"values": [v.item() for v in vals], "loss": [loss.item()],
              "dz": z.grad})
    if kind == 0:
        e["dpred"] = pred.grad
    if kind == 2:
        e["dlogits"] = logits.grad
    return e


def main():
    args = fixture.parse_args(default_seed=20261204)
    rng = np.random.default_rng(args.seed)
    specs = [(0, 5, 7), (1, 6, 4), (2, 4, 3), (0, 1, 3), (1, 3, 9)]
    entries = {"ncases": [len(specs)]}
    for k, (kind, N, D) in enumerate(specs):
        for name, value in make_case(rng, kind, N, D).items():
            entries["c%d_%s" % (k, name)] = value
    fixture.write(args.out, "composite", entries)


if __name__ == "__main__":
    main()
