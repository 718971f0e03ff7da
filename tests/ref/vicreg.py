"""PyTorch float64 reference for ss_vicreg: lightly's VICRegLoss (lambda 25,
mu 25, nu 1, eps 1e-4, 2-D inputs, no gather), functions as in
lightly/loss/vicreg_loss.py. Writes <out>/vicreg.bin (format: fixture.py).
Importable: vicreg_loss."""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402


def invariance_loss(x, y):
    return F.mse_loss(x, y)


def variance_loss(x, eps=1e-4):
    x = x - x.mean(dim=0)
    std = torch.sqrt(x.var(dim=0) + eps)
    return torch.mean(F.relu(1.0 - std))


def covariance_loss(x):
    x = x - x.mean(dim=0)
    batch_size = x.size(0)
    dim = x.size(-1)
    nondiag_mask = ~torch.eye(dim, device=x.device, dtype=torch.bool)
    cov = torch.einsum("b...c,b...d->...cd", x, x) / (batch_size - 1)
    loss = cov[..., nondiag_mask].pow(2).sum(-1) / dim
    return loss.mean()


def vicreg_loss(z_a, z_b, lambda_param=25.0, mu_param=25.0, nu_param=1.0, eps=1e-4,
                terms=False):
    """lightly VICRegLoss.forward (no gather)."""
    assert z_a.shape[0] > 1 and z_b.shape[0] > 1
    inv = invariance_loss(z_a, z_b)
    var = 0.5 * (variance_loss(z_a, eps) + variance_loss(z_b, eps))
    cov = covariance_loss(z_a) + covariance_loss(z_b)
    loss = lambda_param * inv + mu_param * var + nu_param * cov
    return (loss, inv, var, cov) if terms else loss


# (N, D, lambda, mu, nu, eps, dloss, scale): scale < 1 keeps some std < 1
# (variance hinge active), scale > 1 switches it off for some dims
CASES = [
    (8, 16, 25.0, 25.0, 1.0, 1e-4, 1.0, 0.8),
    (16, 6, 25.0, 25.0, 1.0, 1e-4, 0.7, 1.0),
    (2, 5, 25.0, 25.0, 1.0, 1e-4, 1.0, 0.5),
    (3, 1, 25.0, 25.0, 1.0, 1e-4, 1.0, 0.5),
    (5, 9, 10.0, 5.0, 2.0, 1e-3, -1.1, 1.2),
    (12, 12, 25.0, 25.0, 1.0, 1e-4, 1.0, 0.9),
]


def main():
    args = fixture.parse_args(default_seed=2022)
    g = torch.Generator().manual_seed(args.seed)
    out = {"ncases": [len(CASES)]}
    for c, (N, D, lam, mu, nu, eps, dloss, scale) in enumerate(CASES):
        # per-dimension scales spread around `scale`: the hinge is mixed
        s = scale * torch.linspace(0.5, 1.5, D, dtype=torch.float64)

        def rnd():
            x = torch.randn(N, D, generator=g, dtype=torch.float64) * s
            return x.float().double().requires_grad_()
        a = rnd()
        b = (a.detach() + 0.3 * rnd().detach()).float().double().requires_grad_()
        loss, inv, var, cov = vicreg_loss(a, b, lam, mu, nu, eps, terms=True)
        (loss * dloss).backward()
        q = "c%d_" % c
        out.update({q + "N": [N], q + "D": [D], q + "lambda": [lam], q + "mu": [mu],
                    q + "nu": [nu], q + "eps": [eps], q + "dloss": [dloss], q + "a": a,
                    q + "b": b, q + "loss": [loss.item()],
                    q + "terms": [inv.item(), var.item(), cov.item()],
                    q + "da": a.grad, q + "db": b.grad})
    print(fixture.write(args.out, "vicreg", out))


if __name__ == "__main__":
    main()
