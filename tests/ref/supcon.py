"""SupCon reference: a float64 replica of pytorch-metric-learning's SupConLoss
(L_out form, AvgNonZeroReducer) on the (V*N, D) stacked views, labels
repeated per view and -1 mapped to a unique label per sample.

Writes tests/fixtures/supcon.bin: ncases, then per case k entries c<k>_*:
z (V,N,D), labels (N), V, N, D, temperature, cosine, loss, losses (V,N),
dz (V,N,D) = dloss/dz.

One deliberate difference from PML: when the batch holds no negative pair at
all PML returns 0, the L_out formula (and selfsup) does not; no case here has
that shape.
"""
import torch

import fixture


def pml_supcon(z, labels, temperature, cosine):
    V, N, D = z.shape
    emb = z.reshape(V * N, D)
    lab = labels.clone()
    unl = lab == -1
    lab[unl] = -2 - torch.arange(N)[unl]  # unlabeled: its own views only
    lab = lab.repeat(V)
    if cosine:
        emb = torch.nn.functional.normalize(emb, p=2, dim=1)
    mat = emb @ emb.t()
    M = V * N
    same = lab[:, None] == lab[None, :]
    eye = torch.eye(M, dtype=torch.bool)
    pos_mask = (same & ~eye).double()
    neg_mask = (~same).double()
    assert neg_mask.bool().any(), "PML would return 0 here"
    if not pos_mask.bool().any():
        return (z * 0).sum(), torch.zeros(V, N, dtype=torch.float64)
    # As PML: scale, subtract the detached row max, masked logsumexp.
    mat = mat / temperature
    mat_max, _ = mat.max(dim=1, keepdim=True)
    mat = mat - mat_max.detach()
    keep = (pos_mask + neg_mask).bool()
    den = torch.logsumexp(mat.masked_fill(~keep, torch.finfo(mat.dtype).min),
                          dim=1, keepdim=True)
    den = den.masked_fill(~keep.any(dim=1, keepdim=True), 0)
    log_prob = mat - den
    tiny = torch.finfo(mat.dtype).tiny
    mean_log_prob_pos = (pos_mask * log_prob).sum(1) / (pos_mask.sum(1) + tiny)
    losses = -mean_log_prob_pos
    # AvgNonZeroReducer: mean over anchors with a positive (their losses are
    # > 0 whenever some negative exists).
    has_pos = pos_mask.sum(1) > 0
    loss = losses[has_pos].mean()
    return loss, losses.reshape(V, N)


def case(g, V, N, D, labels, temperature, cosine, scale=1.0):
    z = (torch.randn(V, N, D, generator=g, dtype=torch.float64) * scale)
    z.requires_grad_(True)
    labels = torch.tensor(labels, dtype=torch.int64)
    loss, losses = pml_supcon(z, labels, temperature, cosine)
    loss.backward()
    return dict(z=z, labels=labels, V=[V], N=[N], D=[D],
                temperature=[temperature], cosine=[cosine], loss=[loss.item()],
                losses=losses, dz=z.grad)


def main():
    args = fixture.parse_args(default_seed=1234)
    g = torch.Generator().manual_seed(args.seed)

    def rl(n, hi):  # random labels in [-1, hi), with at least one negative pair
        while True:
            lab = torch.randint(-1, hi, (n,), generator=g).tolist()
            if -1 in lab or len(set(lab)) > 1:
                return lab

    cases = [
        # classes, unlabeled samples, a class seen once (positive: other view)
        case(g, 2, 8, 5, [0, 1, 0, -1, 2, 1, -1, 7], 0.1, 1),
        # V = 1: unlabeled and singleton classes have no positive; huge labels
        case(g, 1, 9, 6, [3, 3, -1, 5, 1000000007, 3, 5, 1 << 62, 1000000007],
             0.1, 1),
        # three views, dot products, random labels
        case(g, 3, 5, 3, rl(5, 3), 0.5, 0, scale=0.5),
        # random labels, larger D, default temperature
        case(g, 2, 7, 33, rl(7, 4), 0.1, 1),
        # no anchor has a positive: loss 0, zero gradient
        case(g, 1, 4, 3, [0, 1, -1, 2], 0.2, 1),
    ]
    entries = {"ncases": [len(cases)]}
    for k, c in enumerate(cases):
        for name, v in c.items():
            entries["c%d_%s" % (k, name)] = v
    fixture.write(args.out, "supcon", entries)


if __name__ == "__main__":
    main()
