"""PyTorch float64 reference for ss_wmse (tests/test_wmse.c).

Whitening2d and lightly_wmse replicate lightly's Whitening2d.forward
(training mode; the running statistics do not enter the loss) and
WMSELoss.forward with norm_mse_loss, except that the permutation of each
iteration (lightly: torch.randperm(bs)) is an input so the C code can use
the same one. Fields c<k>_: V, N, D, w_size, w_iter, eps, perm (w_iter, N),
z (V, N, D), loss, dz. Usage: wmse.py [--seed S] [--out DIR].
"""
import numpy as np
import torch
import torch.nn.functional as F

import fixture

torch.set_default_dtype(torch.float64)


def norm_mse_loss(x0, x1):
    x0 = F.normalize(x0)
    x1 = F.normalize(x1)
    return 2 - 2 * (x0 * x1).sum(dim=-1).mean()


def whitening2d(x, eps=0.0):
    """lightly Whitening2d.forward in training mode (x: (w, D))."""
    D = x.shape[1]
    x = x.unsqueeze(2).unsqueeze(3)
    m = x.mean(0).view(D, -1).mean(-1).view(1, -1, 1, 1)
    xn = x - m
    T = xn.permute(1, 0, 2, 3).contiguous().view(D, -1)
    f_cov = torch.mm(T, T.permute(1, 0)) / (T.shape[-1] - 1)
    eye = torch.eye(D).type(f_cov.type())
    f_cov_shrinked = (1 - eps) * f_cov + eps * eye
    inv_sqrt = torch.linalg.solve_triangular(
        torch.linalg.cholesky(f_cov_shrinked), eye, upper=False)
    inv_sqrt = inv_sqrt.contiguous().view(D, D, 1, 1)
    decorrelated = F.conv2d(xn, inv_sqrt)
    return decorrelated.squeeze(2).squeeze(2)


def lightly_wmse(inp, num_samples, w_size, w_iter, eps, perms):
    """lightly WMSELoss.forward on inp (num_samples * bs, D)."""
    bs = inp.shape[0] // num_samples
    num_pairs = num_samples * (num_samples - 1) // 2
    loss = torch.tensor(0.0)
    for it in range(w_iter):
        z = torch.empty_like(inp)
        perm = perms[it].view(-1, w_size)
        for idx in perm:
            for i in range(num_samples):
                z[idx + i * bs] = whitening2d(inp[idx + i * bs], eps)
        for i in range(num_samples - 1):
            for j in range(i + 1, num_samples):
                x0 = z[i * bs: (i + 1) * bs]
                x1 = z[j * bs: (j + 1) * bs]
                loss = loss + norm_mse_loss(x0, x1)
    return loss / (w_iter * num_pairs)


def make_case(rng, V, N, D, w_size, w_iter, eps, identity):
    base = rng.standard_normal((N, D))
    z = torch.tensor(np.stack([base + 0.7 * rng.standard_normal((N, D))
                               for _ in range(V)]), requires_grad=True)
    if identity:
        perms = torch.arange(N).repeat(w_iter, 1)
    else:
        perms = torch.stack([torch.tensor(rng.permutation(N))
                             for _ in range(w_iter)])
    loss = lightly_wmse(z.reshape(V * N, D), V, w_size, w_iter, eps, perms)
    loss.backward()
    return {"V": [V], "N": [N], "D": [D], "w_size": [w_size],
            "w_iter": [w_iter], "eps": [eps], "identity": [identity],
            "perm": perms, "z": z, "loss": [loss.item()], "dz": z.grad}


def main():
    args = fixture.parse_args(default_seed=20261208)
    rng = np.random.default_rng(args.seed)

    def n(lo, hi):
        return int(rng.integers(lo, hi + 1))

    d = n(2, 5)
    specs = [  # (V, N, D, w_size, w_iter, eps, identity perm)
        (2, 4 * d, d, 2 * d, 1, 0.0, 0),         # lightly defaults, 2 sub-batches
        (2, 16, 8, 16, 1, 0.0, 1),               # w_size = 2 D, one sub-batch
        (3, 24, 4, 12, 2, 0.0, 0),               # 3 views, 2 iterations
        (2, 30, 3, 10, 1, 0.1, 0),               # shrinkage
        (2, 6, 1, 2, 2, 0.0, 0),                 # D = 1, w_size = 2
        (4, 20, 5, 20, 1, 0.05, 1),
    ]
    entries = {"ncases": [len(specs)]}
    for k, spec in enumerate(specs):
        for name, value in make_case(rng, *spec).items():
            entries["c%d_%s" % (k, name)] = value
    fixture.write(args.out, "wmse", entries)


if __name__ == "__main__":
    main()
