"""PyTorch float64 reference for ss_ntxent (tests/test_ntxent.c).

Cases, each written as c<k>_<field> (z, V, N, D, temperature, cosine,
hard_beta, tau_plus, loss, losses, dz) plus ncases:
  * V = 2, plain: a replica of lightly's NTXentLoss.forward (no memory bank,
    single process), per-anchor losses with reduction="none";
  * V = 3, plain: the general multi-view formula of selfsup.h;
  * dot product (cosine = 0): the same code without F.normalize;
  * hard negatives / debiased: HCL's criterion (joshr17/HCL, image/main.py,
    estimator "hard") for V = 2, and its per-pair generalisation for V = 3.
Gradients by autograd. Usage: ntxent.py [--seed S] [--out DIR].
"""
import numpy as np
import torch
import torch.nn.functional as F

import fixture

torch.set_default_dtype(torch.float64)


def lightly_ntxent(out0, out1, temperature, normalize=True):
    """lightly NTXentLoss.forward, memory_bank_size=0, one process."""
    batch_size = out0.shape[0]
    if normalize:
        out0 = F.normalize(out0, dim=1)
        out1 = F.normalize(out1, dim=1)
    diag_mask = torch.eye(batch_size, dtype=torch.bool)
    logits_00 = torch.einsum("nc,mc->nm", out0, out0) / temperature
    logits_01 = torch.einsum("nc,mc->nm", out0, out1) / temperature
    logits_10 = torch.einsum("nc,mc->nm", out1, out0) / temperature
    logits_11 = torch.einsum("nc,mc->nm", out1, out1) / temperature
    logits_00 = logits_00[~diag_mask].view(batch_size, -1)
    logits_11 = logits_11[~diag_mask].view(batch_size, -1)
    logits_0100 = torch.cat([logits_01, logits_00], dim=1)
    logits_1011 = torch.cat([logits_10, logits_11], dim=1)
    logits = torch.cat([logits_0100, logits_1011], dim=0)
    labels = torch.arange(batch_size, dtype=torch.long).repeat(2)
    return F.cross_entropy(logits, labels, reduction="none")


def general_ntxent(z, temperature, normalize=True):
    """selfsup.h: loss_i = LSE_{k != i} s_ik - mean_{p in P(i)} s_ip."""
    V, N, D = z.shape
    x = z.reshape(V * N, D)
    if normalize:
        x = F.normalize(x, dim=1)
    s = x @ x.t() / temperature
    eye = torch.eye(V * N, dtype=torch.bool)
    sample = torch.arange(V * N) % N
    pos = (sample[:, None] == sample[None, :]) & ~eye
    lse = torch.logsumexp(s.masked_fill(eye, float("-inf")), dim=1)
    return lse - (s * pos).sum(1) / (V - 1)


def hcl_criterion(out_1, out_2, tau_plus, batch_size, beta, temperature):
    """HCL's criterion (estimator 'hard'), per anchor instead of .mean()."""
    out = torch.cat([out_1, out_2], dim=0)
    neg = torch.exp(torch.mm(out, out.t().contiguous()) / temperature)
    mask = torch.ones((batch_size, 2 * batch_size), dtype=bool)
    for i in range(batch_size):
        mask[i, i] = 0
        mask[i, i + batch_size] = 0
    mask = torch.cat((mask, mask), 0)
    neg = neg.masked_select(mask).view(2 * batch_size, -1)
    pos = torch.exp(torch.sum(out_1 * out_2, dim=-1) / temperature)
    pos = torch.cat([pos, pos], dim=0)
    N = batch_size * 2 - 2
    imp = (beta * neg.log()).exp()
    reweight_neg = (imp * neg).sum(dim=-1) / imp.mean(dim=-1)
    Ng = (-tau_plus * N * pos + reweight_neg) / (1 - tau_plus)
    Ng = torch.clamp(Ng, min=N * np.e ** (-1 / temperature))
    return -torch.log(pos / (pos + Ng))


def hcl_general(z, temperature, beta, tau_plus, normalize=True):
    """The same estimator with V views: averaged over the V-1 positives."""
    V, N, D = z.shape
    x = z.reshape(V * N, D)
    if normalize:
        x = F.normalize(x, dim=1)
    M = V * N
    s = x @ x.t() / temperature
    sample = torch.arange(M) % N
    same = sample[:, None] == sample[None, :]
    nq = M - V
    negs = s[~same].view(M, nq)
    neg = torch.exp(negs)
    imp = (beta * neg.log()).exp()
    reweight = (imp * neg).sum(-1) / imp.mean(-1)
    losses = torch.zeros(M)
    for u in range(1, V):
        # positive of anchor (v, n) in view (v + u) mod V
        idx = (torch.arange(M) + u * N) % M
        pos = torch.exp(s[torch.arange(M), idx])
        Ng = (-tau_plus * nq * pos + reweight) / (1 - tau_plus)
        Ng = torch.clamp(Ng, min=nq * np.e ** (-1 / temperature))
        losses = losses - torch.log(pos / (pos + Ng))
    return losses / (V - 1)


def make_case(rng, V, N, D, temperature, cosine, beta=0.0, tau=0.0,
              zscale=1.0):
    z = torch.tensor(rng.standard_normal((V, N, D)) * zscale,
                     requires_grad=True)
    if beta > 0 or tau > 0:
        if V == 2:
            a, b = z[0], z[1]
            if cosine:
                a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
            losses = hcl_criterion(a, b, tau, N, beta, temperature)
            check = hcl_general(z.detach(), temperature, beta, tau,
                                bool(cosine))
            assert torch.allclose(losses.detach(), check, rtol=1e-12)
        else:
            losses = hcl_general(z, temperature, beta, tau, bool(cosine))
    elif V == 2:
        losses = lightly_ntxent(z[0], z[1], temperature, bool(cosine))
        check = general_ntxent(z.detach(), temperature, bool(cosine))
        assert torch.allclose(losses.detach(), check, rtol=1e-12)
    else:
        losses = general_ntxent(z, temperature, bool(cosine))
    loss = losses.mean()
    loss.backward()
    return {"z": z, "V": [V], "N": [N], "D": [D],
            "temperature": [temperature], "cosine": [cosine],
            "hard_beta": [beta], "tau_plus": [tau], "loss": [loss.item()],
            "losses": losses, "dz": z.grad}


def main():
    args = fixture.parse_args(default_seed=20261204)
    rng = np.random.default_rng(args.seed)

    def n(lo, hi):
        return int(rng.integers(lo, hi + 1))

    specs = [
        # (V, N, D, temperature, cosine, beta, tau, zscale)
        (2, n(3, 9), n(2, 16), 0.5, 1, 0.0, 0.0, 1.0),   # lightly default
        (2, n(3, 9), n(2, 4), 0.1, 1, 0.0, 0.0, 1.0),  # D > 1: cosine dz is 0
        (2, 1, n(2, 6), 0.5, 1, 0.0, 0.0, 1.0),          # N = 1
        (3, n(2, 6), n(3, 10), 0.3, 1, 0.0, 0.0, 1.0),   # multi-view
        (4, n(2, 4), n(3, 6), 0.2, 1, 0.0, 0.0, 1.0),
        (2, n(3, 8), n(2, 8), 0.7, 0, 0.0, 0.0, 0.5),    # dot product
        (3, n(2, 5), n(2, 6), 1.0, 0, 0.0, 0.0, 0.5),
        (2, n(4, 9), n(3, 10), 0.5, 1, 1.0, 0.1, 1.0),   # HCL defaults
        (2, n(4, 9), n(3, 10), 0.5, 1, 0.5, 0.0, 1.0),   # hard only
        (2, n(4, 9), n(3, 10), 0.5, 1, 0.0, 0.1, 1.0),   # debiased only
        (2, n(4, 9), n(3, 8), 0.5, 1, 0.5, 0.6, 1.0),    # clamp active
        (3, n(3, 5), n(3, 8), 0.4, 1, 1.0, 0.05, 1.0),   # HCL, 3 views
        (2, n(4, 8), n(3, 8), 0.8, 0, 0.5, 0.1, 0.5),    # HCL, dot product
    ]
    entries = {"ncases": [len(specs)]}
    for k, spec in enumerate(specs):
        V, N, D, t, cos, beta, tau, zs = spec
        for name, value in make_case(rng, V, N, D, t, cos, beta, tau,
                                     zs).items():
            entries["c%d_%s" % (k, name)] = value
    fixture.write(args.out, "ntxent", entries)


if __name__ == "__main__":
    main()
