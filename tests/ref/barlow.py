"""PyTorch float64 reference for ss_barlow: lightly's BarlowTwinsLoss
(lambda_param 5e-3) with each view normalised separately by
F.batch_norm(training=True, no affine: biased variance, eps 1e-5), as lightly
does since PR #1806 (before it, the two views shared statistics).
Writes <out>/barlow.bin (format: fixture.py). Importable: barlow_loss."""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402


def _off_diagonal(x):
    n, m = x.shape
    assert n == m
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def _normalize(z, eps=1e-5):
    return F.batch_norm(z, running_mean=None, running_var=None, weight=None,
                        bias=None, training=True, eps=eps)


def barlow_loss(z_a, z_b, lambda_param=5e-3, eps=1e-5, terms=False):
    """lightly BarlowTwinsLoss.forward (no gather)."""
    z_a_norm, z_b_norm = _normalize(z_a, eps), _normalize(z_b, eps)
    N = z_a.size(0)
    c = z_a_norm.T @ z_b_norm
    c.div_(N)
    invariance_loss = torch.diagonal(c).add(-1).pow(2).sum()
    redundancy_reduction_loss = _off_diagonal(c).pow(2).sum()
    loss = invariance_loss + lambda_param * redundancy_reduction_loss
    if terms:
        return loss, invariance_loss, redundancy_reduction_loss
    return loss


# (N, D, lambda, bn_eps, dloss, scale, shift): N < D and N >= D both appear
CASES = [
    (8, 16, 5e-3, 1e-5, 1.0, 1.0, 0.0),
    (16, 6, 5e-3, 1e-5, 0.8, 2.0, 1.0),
    (2, 5, 5e-3, 1e-5, 1.0, 1.0, 0.0),
    (3, 1, 5e-3, 1e-5, 1.0, 1.0, 0.0),
    (5, 9, 0.05, 1e-3, -1.2, 0.3, -2.0),
    (12, 12, 5e-3, 1e-5, 1.0, 1.0, 0.5),
]


def main():
    args = fixture.parse_args(default_seed=2021)
    g = torch.Generator().manual_seed(args.seed)
    out = {"ncases": [len(CASES)]}
    for c, (N, D, lam, eps, dloss, scale, shift) in enumerate(CASES):
        def rnd():
            x = torch.randn(N, D, generator=g, dtype=torch.float64) * scale + shift
            return x.float().double().requires_grad_()
        a = rnd()
        # correlate the views so the loss is in a realistic range
        b = (0.7 * a.detach() + 0.5 * rnd().detach()).float().double().requires_grad_()
        loss, on, off = barlow_loss(a, b, lam, eps, terms=True)
        (loss * dloss).backward()
        q = "c%d_" % c
        out.update({q + "N": [N], q + "D": [D], q + "lambda": [lam], q + "bn_eps": [eps],
                    q + "dloss": [dloss], q + "a": a, q + "b": b, q + "loss": [loss.item()],
                    q + "terms": [on.item(), off.item()], q + "da": a.grad, q + "db": b.grad})
    print(fixture.write(args.out, "barlow", out))


if __name__ == "__main__":
    main()
