"""PyTorch float64 reference for ss_fused_ce (tests/test_fused_ce.c).

The unfused computation: torch.nn.functional.linear followed by
cross_entropy(weight, ignore_index=-100, label_smoothing). Cases c<k>_
fields: hidden (T, H), weight (V, H), bias (V; zeros when has_bias = 0),
targets, T, H, V, eps, has_bias, has_w, w (V class weights; ones when
has_w = 0), loss, losses, dhidden, dweight, dbias (autograd).
Usage: fused_ce.py [--seed S] [--out DIR].
"""
import numpy as np
import torch
import torch.nn.functional as F

import fixture

torch.set_default_dtype(torch.float64)
IGNORE = -100


def fused_ce_loss(hidden, weight, bias, targets, eps=0.0, class_weight=None,
                  ignore_index=IGNORE, reduction="mean"):
    """The reference: torch Linear + CrossEntropyLoss."""
    logits = F.linear(hidden, weight, bias)
    return F.cross_entropy(logits, targets, weight=class_weight,
                           ignore_index=ignore_index, label_smoothing=eps,
                           reduction=reduction)


def make_case(rng, T, H, V, eps, has_bias, p_ignore, has_w=False):
    h = torch.tensor(rng.standard_normal((T, H)), requires_grad=True)
    w = torch.tensor(rng.standard_normal((V, H)) / np.sqrt(H) * 2,
                     requires_grad=True)
    b = torch.tensor(rng.standard_normal(V) * 0.5, requires_grad=True)
    y = rng.integers(0, V, T)
    y[rng.random(T) < p_ignore] = IGNORE
    if (y != IGNORE).sum() == 0:
        y[0] = rng.integers(0, V)
    y = torch.tensor(y)
    cw = torch.tensor(rng.uniform(0.2, 2.0, V)) if has_w else None
    loss = fused_ce_loss(h, w, b if has_bias else None, y, eps, cw)
    losses = fused_ce_loss(h.detach(), w.detach(),
                           b.detach() if has_bias else None, y, eps, cw,
                           reduction="none")
    loss.backward()
    zero = torch.zeros(V)
    return {"hidden": h, "weight": w, "bias": b if has_bias else zero,
            "targets": y, "T": [T], "H": [H], "V": [V], "eps": [eps],
            "has_bias": [int(has_bias)], "has_w": [int(has_w)],
            "w": cw if has_w else torch.ones(V), "loss": [loss.item()],
            "losses": losses, "dhidden": h.grad, "dweight": w.grad,
            "dbias": b.grad if has_bias else zero}


def main():
    args = fixture.parse_args(default_seed=20261204)
    rng = np.random.default_rng(args.seed)

    def n(lo, hi):
        return int(rng.integers(lo, hi + 1))

    specs = [  # (T, H, V, eps, has_bias, p_ignore)
        (n(3, 9), n(2, 8), n(3, 30), 0.0, False, 0.0),
        (n(3, 9), n(2, 8), n(3, 30), 0.0, True, 0.4),
        (n(3, 9), n(2, 8), n(3, 30), 0.1, True, 0.3),
        (1, n(2, 5), n(2, 9), 0.2, True, 0.0),
        (n(5, 12), 3, n(513, 600), 0.1, True, 0.3),  # more than one chunk
        (n(3, 9), n(2, 6), n(3, 30), 0.0, True, 0.3, True),  # class weights
        (n(3, 9), n(2, 6), n(3, 30), 0.2, False, 0.3, True),
    ]
    entries = {"ncases": [len(specs)]}
    for k, s in enumerate(specs):
        for name, value in make_case(rng, *s).items():
            entries["c%d_%s" % (k, name)] = value
    fixture.write(args.out, "fused_ce", entries)


if __name__ == "__main__":
    main()
