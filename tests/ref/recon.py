"""PyTorch float64 reference for ss_recon (tests/test_recon.c).

torch.nn.functional mse_loss, l1_loss, smooth_l1_loss(beta), huber_loss
(delta) and binary_cross_entropy_with_logits, reduction "none", then the
element mask: mean = sum(l * m) / sum(m) (0 when sum(m) = 0), sum, none.
For "none" the upstream gradient is dlosses: loss = sum(l * m * dlosses).
Cases c<k>_ fields: kind (0..4), reduction (0 mean, 1 sum, 2 none), beta,
n, pred, target, has_mask, mask, dlosses, loss, losses, dpred, dtarget.
Usage: recon.py [--seed S] [--out DIR].
"""
import numpy as np
import torch
import torch.nn.functional as F

import fixture

torch.set_default_dtype(torch.float64)


def elementwise(kind, x, y, beta):
    if kind == 0:
        return F.mse_loss(x, y, reduction="none")
    if kind == 1:
        return F.l1_loss(x, y, reduction="none")
    if kind == 2:
        return F.smooth_l1_loss(x, y, reduction="none", beta=beta)
    if kind == 3:
        return F.huber_loss(x, y, reduction="none", delta=beta)
    return F.binary_cross_entropy_with_logits(x, y, reduction="none")


def recon_loss(kind, reduction, x, y, mask, beta=1.0):
    """mask: float 0/1 tensor or None."""
    l = elementwise(kind, x, y, beta)
    if mask is not None:
        l = l * mask
    if reduction == 0:
        k = mask.sum() if mask is not None else l.numel()
        return l.sum() / k if k > 0 else l.sum() * 0
    if reduction == 1:
        return l.sum()
    return l


def make_case(rng, kind, reduction, n, has_mask, beta):
    x = torch.tensor(rng.standard_normal(n) * 1.5, requires_grad=True)
    if kind == 4:
        y = torch.tensor(rng.uniform(0, 1, n), requires_grad=True)
    else:
        y = torch.tensor(rng.standard_normal(n), requires_grad=True)
    m = (rng.random(n) < 0.6).astype(np.float64) if has_mask else np.ones(n)
    mt = torch.tensor(m) if has_mask else None
    up = torch.tensor(rng.standard_normal(n))
    out = recon_loss(kind, reduction, x, y, mt, beta)
    if reduction == 2:
        losses = out.detach()
        (out * up).sum().backward()
        loss = losses.sum().item()
    else:
        losses = elementwise(kind, x.detach(), y.detach(), beta) * torch.tensor(m)
        out.backward()
        loss = out.item()
    return {"kind": [kind], "reduction": [reduction], "beta": [beta],
            "n": [n], "pred": x, "target": y, "has_mask": [int(has_mask)],
            "mask": m.astype(np.int64), "dlosses": up, "loss": [loss],
            "losses": losses, "dpred": x.grad, "dtarget": y.grad}


def main():
    args = fixture.parse_args(default_seed=20261204)
    rng = np.random.default_rng(args.seed)
    specs = []
    for kind in range(5):
        for red in range(3):
            for has_mask in (False, True):
                beta = [1.0, 1.0, 0.7, 1.3, 1.0][kind]
                specs.append((kind, red, int(rng.integers(5, 25)), has_mask,
                              beta))
    specs.append((2, 0, 12, False, 0.0))  # smooth-L1 with beta = 0 is L1
    entries = {"ncases": [len(specs)]}
    for k, s in enumerate(specs):
        for name, value in make_case(rng, *s).items():
            entries["c%d_%s" % (k, name)] = value
    fixture.write(args.out, "recon", entries)


if __name__ == "__main__":
    main()
