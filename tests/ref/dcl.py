"""DCL / DCLW reference: a float64 replica of lightly's DCLLoss / DCLWLoss
(lightly/loss/dcl_loss.py, no gathering).

lightly's negative term is the SUM of two log-sum-exps, one over the other
samples of the anchor's own view and one over the other samples of the other
view (not one log-sum-exp over both, as in the paper's Eq. 6):

    loss_i = -w_n s(i, i') + LSE_{j != n} s(i, (v, j)) + LSE_{j != n} s(i, (v', j))

For V > 2 the loss is the mean of lightly's two-view loss over all pairs of
views (selfsup's generalisation). cosine = 0 skips lightly's normalisation
(selfsup's dot-product option).

joint = 1 is the paper's single log-sum-exp over the negatives of all views
(lightly PR #1827 for V = 2: logsumexp(cat([sim_00, sim_01]))).

Writes tests/fixtures/dcl.bin: ncases, then per case k entries c<k>_*:
z (V,N,D), V, N, D, temperature, weighted, sigma, cosine, joint_negatives,
loss, losses (V,N) per-anchor losses, dz (V,N,D) = dloss/dz.
"""
import torch
from torch import nn

import fixture


def negative_mises_fisher_weights(out0, out1, sigma=0.5):
    similarity = torch.einsum("nm,nm->n", out0.detach(), out1.detach()) / sigma
    return (2 - out0.shape[0] * nn.functional.softmax(similarity, dim=0)).detach()


def lightly_dcl_anchor_losses(out0, out1, temperature, weight_fn, cosine,
                              joint=0):
    """Per-anchor losses (2, N) of lightly's DCLLoss.forward (before .mean())."""
    if cosine:
        out0 = nn.functional.normalize(out0, dim=1)
        out1 = nn.functional.normalize(out1, dim=1)

    def one_side(a, b):
        n = a.shape[0]
        diag = torch.eye(n, dtype=torch.bool)
        sim_00 = torch.einsum("nc,mc->nm", a, a) / temperature
        sim_01 = torch.einsum("nc,mc->nm", a, b) / temperature
        positive_loss = -sim_01[diag]
        if weight_fn:
            positive_loss = positive_loss * weight_fn(a, b)
        sim_00 = sim_00[~diag].view(n, -1)
        sim_01 = sim_01[~diag].view(n, -1)
        if joint:  # lightly PR #1827
            return positive_loss + torch.logsumexp(
                torch.cat([sim_00, sim_01], dim=1), dim=1)
        return (positive_loss + torch.logsumexp(sim_00, dim=1)
                + torch.logsumexp(sim_01, dim=1))

    return torch.stack([one_side(out0, out1), one_side(out1, out0)])


def dcl_joint(z, temperature, weighted, sigma, cosine):
    """One log-sum-exp over the rows of all other samples, any V."""
    V, N, D = z.shape
    x = z.reshape(V * N, D)
    if cosine:
        x = nn.functional.normalize(x, dim=1)
    sim = x @ x.t() / temperature
    sample = torch.arange(V * N) % N
    neg = torch.logsumexp(sim.masked_fill(sample[:, None] == sample[None, :],
                                          float("-inf")), dim=1)
    w = torch.ones(N, dtype=torch.float64)
    if weighted:
        w = negative_mises_fisher_weights(x[:N], x[N:], sigma)
    pos = torch.zeros(V * N, dtype=torch.float64)
    for v in range(V):
        for u in range(V):
            if u != v:
                pos[v * N:(v + 1) * N] += w * sim[v * N + torch.arange(N),
                                                  u * N + torch.arange(N)]
    losses = (neg - pos / (V - 1)).reshape(V, N)
    return losses.mean(), losses


def dcl(z, temperature, weighted, sigma, cosine, joint):
    if joint:
        return dcl_joint(z, temperature, weighted, sigma, cosine)
    V, N, _ = z.shape
    wf = None
    if weighted:
        wf = lambda a, b: negative_mises_fisher_weights(a, b, sigma)
    losses = torch.zeros(V, N, dtype=torch.float64)
    for v in range(V):
        for u in range(v + 1, V):
            pair = lightly_dcl_anchor_losses(z[v], z[u], temperature, wf, cosine)
            losses[v] = losses[v] + pair[0] / (V - 1)
            losses[u] = losses[u] + pair[1] / (V - 1)
    return losses.mean(), losses


def case(g, V, N, D, temperature=0.1, weighted=0, sigma=0.5, cosine=1,
         scale=1.0, joint=0):
    z = torch.randn(V, N, D, generator=g, dtype=torch.float64) * scale
    z.requires_grad_(True)
    loss, losses = dcl(z, temperature, weighted, sigma, cosine, joint)
    if V == 2 and cosine:  # the V = 2 path is lightly itself
        wf = (lambda a, b: negative_mises_fisher_weights(a, b, sigma)) \
            if weighted else None
        want = 0.5 * sum(lightly_dcl_anchor_losses(z[0], z[1], temperature,
                                                   wf, 1, joint)[k].mean()
                         for k in range(2))
        assert abs(loss.item() - want.item()) < 1e-12
    loss.backward()
    return dict(z=z, V=[V], N=[N], D=[D], temperature=[temperature],
                weighted=[weighted], sigma=[sigma], cosine=[cosine],
                joint_negatives=[joint],
                loss=[loss.item()], losses=losses, dz=z.grad)


def main():
    args = fixture.parse_args(default_seed=4321)
    g = torch.Generator().manual_seed(args.seed)
    cases = [
        case(g, 2, 8, 5),                                   # DCL, defaults
        case(g, 2, 7, 6, weighted=1),                       # DCLW, defaults
        case(g, 3, 5, 3),                                   # three views
        case(g, 2, 4, 9, temperature=0.5, weighted=1, sigma=0.8, cosine=0,
             scale=0.4),                                    # DCLW, dot
        case(g, 4, 3, 2, temperature=0.3, cosine=0, scale=0.5),
        case(g, 2, 2, 33),                                  # smallest N
        case(g, 2, 8, 5, joint=1),                          # paper form
        case(g, 2, 6, 4, weighted=1, joint=1),
        case(g, 3, 4, 3, temperature=0.4, cosine=0, scale=0.5, joint=1),
    ]
    entries = {"ncases": [len(cases)]}
    for k, c in enumerate(cases):
        for name, v in c.items():
            entries["c%d_%s" % (k, name)] = v
    fixture.write(args.out, "dcl", entries)


if __name__ == "__main__":
    main()
