"""PyTorch float64 reference for ss_empssl (tests/test_tcr.c).

total_coding_rate replicates the official EMP-SSL TotalCodingRate
(tsb0601/EMP-SSL: compute_discrimn_loss returns logdet(I + p/(m eps) W W^T)/2,
forward returns its negative), invariance_loss is lightly's, and
empssl_loss = mean_v TotalCodingRate(z_v) + inv_coef * invariance, the sign
of the paper (coding rate maximised). lightly_empssl is lightly's EMPSSLLoss
(+R: the sign differs in the first term); kept to check that relation.
Fields c<k>_: V, N, D, eps, inv_coef, z, loss, rates (V), dz.
Usage: tcr.py [--seed S] [--out DIR].
"""
import numpy as np
import torch
import torch.nn.functional as F

import fixture

torch.set_default_dtype(torch.float64)


def coding_rate(W, eps):
    """R = logdet(I + p/(m eps) W W^T) / 2 for W: (p = D, m = N)."""
    p, m = W.shape
    I = torch.eye(p)
    scalar = p / (m * eps)
    return torch.logdet(I + scalar * W.matmul(W.T)) / 2.0


def total_coding_rate(X, eps):
    """The official TotalCodingRate.forward on X: (N, D): -R."""
    return -coding_rate(X.T, eps)


def invariance_loss(z):
    z_mean = z.mean(0, keepdim=True)
    return -F.cosine_similarity(z, z_mean, dim=-1).mean()


def empssl_loss(z, eps=0.2, inv_coef=200.0):
    tcr = torch.stack([total_coding_rate(z[v], eps) for v in range(z.shape[0])])
    return tcr.mean() + inv_coef * invariance_loss(z)


def lightly_empssl(z, eps=0.2, inv_coef=200.0):
    _, batch_size, dim = z.shape
    diag = torch.eye(dim).unsqueeze(0)
    einsum = torch.einsum("vbd,vbe->vde", z, z)
    logdet = torch.logdet(diag + dim / (batch_size * eps) * einsum)
    return 0.5 * logdet.mean() + inv_coef * invariance_loss(z)


def make_case(rng, V, N, D, eps, inv_coef):
    base = rng.standard_normal((1, N, D))
    z = torch.tensor(base + 0.6 * rng.standard_normal((V, N, D)),
                     requires_grad=True)
    loss = empssl_loss(z, eps, inv_coef)
    rates = torch.stack([coding_rate(z[v].detach().T, eps) for v in range(V)])
    inv = invariance_loss(z.detach())
    lightly = lightly_empssl(z.detach(), eps, inv_coef)
    # lightly = +mean R + inv_coef inv; ours = -mean R + inv_coef inv
    assert abs((lightly - inv_coef * inv) + (loss.detach() - inv_coef * inv)) < 1e-8
    loss.backward()
    return {"V": [V], "N": [N], "D": [D], "eps": [eps],
            "inv_coef": [inv_coef], "z": z, "loss": [loss.item()],
            "rates": rates, "dz": z.grad}


def main():
    args = fixture.parse_args(default_seed=20261210)
    rng = np.random.default_rng(args.seed)

    def n(lo, hi):
        return int(rng.integers(lo, hi + 1))

    specs = [  # (V, N, D, eps, inv_coef)
        (n(2, 4), n(12, 20), n(3, 8), 0.2, 200.0),   # defaults, N > D
        (n(2, 4), n(3, 6), n(8, 16), 0.2, 200.0),    # N < D (Gram form)
        (1, n(4, 9), n(4, 9), 0.2, 0.0),             # pure coding rate
        (n(2, 5), n(3, 10), n(3, 10), 0.5, 1.0),
        (2, 1, n(2, 5), 0.2, 10.0),                  # N = 1
        (3, n(3, 6), 1, 0.05, 5.0),                  # D = 1
    ]
    entries = {"ncases": [len(specs)]}
    for k, spec in enumerate(specs):
        for name, value in make_case(rng, *spec).items():
            entries["c%d_%s" % (k, name)] = value
    fixture.write(args.out, "tcr", entries)


if __name__ == "__main__":
    main()
