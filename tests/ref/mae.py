"""PyTorch float64 reference for ss_mae (tests/test_mae.c).

patchify and forward_loss are replicas of MAE's models_mae.py (facebookresearch/mae):
norm_pix uses target.var(dim=-1) (unbiased) + 1e-6, the loss is the mean
per-patch squared error averaged over masked patches. Cases c<k>_ fields:
imgs (B, C, H, W), pred (B, L, P), mask (B, L), B, C, H, W, p, norm_pix,
patches, loss, losses (B, L), dpred. Usage: mae.py [--seed S] [--out DIR].
"""
import numpy as np
import torch

import fixture

torch.set_default_dtype(torch.float64)


def patchify(imgs, p):
    """MAE's patchify for C channels: (N, C, H, W) -> (N, L, p*p*C)."""
    N, C, H, W = imgs.shape
    h, w = H // p, W // p
    x = imgs.reshape(N, C, h, p, w, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(N, h * w, p * p * C)


def mae_loss(imgs, pred, mask, p, norm_pix_loss=True, per_patch=False):
    """MAE's forward_loss."""
    target = patchify(imgs, p)
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.e-6) ** .5
    loss = (pred - target) ** 2
    loss = loss.mean(dim=-1)
    if per_patch:
        return loss
    return (loss * mask).sum() / mask.sum()


def make_case(rng, B, C, H, W, p, norm_pix):
    imgs = torch.tensor(rng.standard_normal((B, C, H, W)))
    L, P = (H // p) * (W // p), p * p * C
    pred = torch.tensor(rng.standard_normal((B, L, P)), requires_grad=True)
    mask = torch.tensor((rng.random((B, L)) < 0.75).astype(np.float64))
    if mask.sum() == 0:
        mask[0, 0] = 1
    loss = mae_loss(imgs, pred, mask, p, bool(norm_pix))
    loss.backward()
    losses = mae_loss(imgs, pred.detach(), mask, p, bool(norm_pix), True)
    return {"imgs": imgs, "pred": pred, "mask": mask.long(), "B": [B],
            "C": [C], "H": [H], "W": [W], "p": [p], "norm_pix": [norm_pix],
            "patches": patchify(imgs, p), "loss": [loss.item()],
            "losses": losses, "dpred": pred.grad}


def main():
    args = fixture.parse_args(default_seed=20261204)
    rng = np.random.default_rng(args.seed)
    specs = [(2, 3, 8, 8, 4, 1), (2, 3, 8, 8, 4, 0), (1, 1, 6, 9, 3, 1),
             (3, 2, 4, 6, 2, 1), (1, 3, 4, 4, 1, 1)]
    entries = {"ncases": [len(specs)]}
    for k, s in enumerate(specs):
        for name, value in make_case(rng, *s).items():
            entries["c%d_%s" % (k, name)] = value
    fixture.write(args.out, "mae", entries)


if __name__ == "__main__":
    main()
