"""PyTorch float64 reference for ss_mlm (tests/test_mlm.c).

Masked cross-entropy is torch.nn.functional.cross_entropy itself (weight,
ignore_index, label_smoothing, reduction "mean" and "none"). Cases c<k>_
fields: logits (T, V), targets (T), T, V, eps, has_w, w (V), loss, losses
(T), dlogits (T, V) by autograd. Usage: mlm.py [--seed S] [--out DIR].
"""
import numpy as np
import torch
import torch.nn.functional as F

import fixture

torch.set_default_dtype(torch.float64)
IGNORE = -100


def mlm_loss(logits, targets, eps=0.0, weight=None, ignore_index=IGNORE,
             reduction="mean"):
    """The reference: torch's CrossEntropyLoss."""
    return F.cross_entropy(logits, targets, weight=weight,
                           ignore_index=ignore_index, label_smoothing=eps,
                           reduction=reduction)


def make_case(rng, T, V, eps, weighted, p_ignore, scale=2.0):
    x = torch.tensor(rng.standard_normal((T, V)) * scale, requires_grad=True)
    y = rng.integers(0, V, T)
    y[rng.random(T) < p_ignore] = IGNORE
    if (y != IGNORE).sum() == 0:
        y[rng.integers(0, T)] = rng.integers(0, V)
    y = torch.tensor(y)
    w = torch.tensor(rng.uniform(0.2, 2.0, V)) if weighted else None
    loss = mlm_loss(x, y, eps, w)
    losses = mlm_loss(x.detach(), y, eps, w, reduction="none")
    loss.backward()
    return {"logits": x, "targets": y, "T": [T], "V": [V], "eps": [eps],
            "has_w": [int(weighted)],
            "w": w if weighted else torch.zeros(V), "loss": [loss.item()],
            "losses": losses, "dlogits": x.grad}


def main():
    args = fixture.parse_args(default_seed=20261204)
    rng = np.random.default_rng(args.seed)

    def n(lo, hi):
        return int(rng.integers(lo, hi + 1))

    specs = [  # (T, V, eps, weighted, p_ignore)
        (n(4, 12), n(3, 20), 0.0, False, 0.0),
        (n(4, 12), n(3, 20), 0.0, False, 0.4),
        (n(4, 12), n(3, 20), 0.1, False, 0.4),
        (n(4, 12), n(3, 20), 0.0, True, 0.3),
        (n(4, 12), n(3, 20), 0.2, True, 0.3),
        (1, n(2, 9), 0.1, True, 0.0),
        (n(3, 8), 1, 0.3, False, 0.2),
        (n(3, 8), n(30, 60), 1.0, True, 0.5),
    ]
    entries = {"ncases": [len(specs)]}
    for k, s in enumerate(specs):
        for name, value in make_case(rng, *s).items():
            entries["c%d_%s" % (k, name)] = value
    fixture.write(args.out, "mlm", entries)


if __name__ == "__main__":
    main()
