#!/usr/bin/env python3
"""PyTorch side of `selfsup train` (SimCLR): same encoder, projector,
augmentations (simclr preset of train/augment.h, re-implemented with batched
tensor ops since torchvision is not installed), NT-Xent (tau 0.2), AdamW,
warm-up + cosine, batch and epochs. Prints training images/s (each image = 2
views through forward + backward + step, augmentation included) and, with
--probe, the linear-probe accuracy of the frozen 128-d features
(multinomial logistic regression, L-BFGS, standardised features, as
train/eval.c).

usage: /usr/bin/python3 bench/train_torch.py [--threads 2] [--batch 256]
       [--epochs 6] [--subset 0] [--steps 0] [--probe]
--steps N stops after N steps (a throughput measurement)."""
import argparse
import gzip
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DIR = "/usr/share/datasets/fashion-mnist"
CROP_MIN, BLUR_P, ERASE_P = 0.35, 0.0, 0.0  # the simclr preset of train/augment.c


def load(split):
    pre = "train" if split == "train" else "t10k"
    with gzip.open(f"{DIR}/{pre}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(f"{DIR}/{pre}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))


def encoder():
    def blk(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]
    return nn.Sequential(*blk(1, 32), nn.MaxPool2d(2), *blk(32, 64), nn.MaxPool2d(2),
                         *blk(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def projector(h=256, z=128):
    return nn.Sequential(nn.Linear(128, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True), nn.Linear(h, z))


def augment(x, g):
    """simclr preset: crop (0.35, 1), ratio (3/4, 4/3); flip 0.5; jitter 0.8
    (brightness, contrast 0.4); blur (k 3, sigma 0.1..2) with probability
    BLUR_P and erasing with ERASE_P: both 0 in the preset (train/augment.c)."""
    n = x.shape[0]
    area = torch.empty(n).uniform_(CROP_MIN, 1.0, generator=g)
    logr = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3), generator=g)
    r = torch.exp(logr)
    w = torch.sqrt(area * r).clamp(max=1.0)
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(n, generator=g) * 2 - 1) * (1 - w)
    cy = (torch.rand(n, generator=g) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    jit = (torch.rand(n, 1, 1, 1, generator=g) < 0.8).float()
    b = 1 + (torch.rand(n, 1, 1, 1, generator=g) * 0.8 - 0.4) * jit
    c = 1 + (torch.rand(n, 1, 1, 1, generator=g) * 0.8 - 0.4) * jit
    x = (x * b).clamp(0, 1)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - m) * c + m).clamp(0, 1)
    sig = torch.empty(n).uniform_(0.1, 2.0, generator=g)
    k1 = torch.exp(-(torch.tensor([-1.0, 0.0, 1.0])[None] ** 2) / (2 * sig[:, None] ** 2))
    k1 = k1 / k1.sum(1, keepdim=True)
    k2 = (k1[:, :, None] * k1[:, None, :])[:, None]
    blur = torch.rand(n, generator=g) < BLUR_P
    xb = F.conv2d(F.pad(x.transpose(0, 1), (1, 1, 1, 1), mode="reflect"), k2, groups=n).transpose(0, 1)
    x = torch.where(blur[:, None, None, None], xb, x)
    er = torch.rand(n, generator=g) < ERASE_P
    ea = torch.empty(n).uniform_(0.02, 0.33, generator=g) * 784
    ew = ea.sqrt().clamp(1, 27).long()
    top = (torch.rand(n, generator=g) * (28 - ew)).long()
    left = (torch.rand(n, generator=g) * (28 - ew)).long()
    ar = torch.arange(28)
    my = (ar[None] >= top[:, None]) & (ar[None] < (top + ew)[:, None])
    mx = (ar[None] >= left[:, None]) & (ar[None] < (left + ew)[:, None])
    mask = (my[:, :, None] & mx[:, None, :]) & er[:, None, None]
    return x.masked_fill(mask[:, None], 0.0)


def ntxent(z, tau):
    z = F.normalize(z, dim=1)
    n = z.shape[0] // 2
    s = z @ z.t() / tau
    s.fill_diagonal_(-float("inf"))
    tgt = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(s, tgt)


def probe(ftr, ytr, fte, yte, iters=200, l2=1e-4):
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
    ftr, fte = ((ftr - mu) / sd).double(), ((fte - mu) / sd).double()
    W = torch.zeros(ftr.shape[1], 10, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(10, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=iters, history_size=10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(ftr @ W + b, ytr) + 0.5 * l2 * (W * W).sum()
        loss.backward()
        return loss
    opt.step(closure)
    return ((fte @ W + b).argmax(1) == yte).double().mean().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--subset", type=int, default=0)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--probe", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, _ = load("train")
    if a.subset:
        x = x[: a.subset]
    enc, proj = encoder(), projector()
    params = list(enc.parameters()) + list(proj.parameters())
    decay = [p for p in params if p.dim() > 1]
    nodecay = [p for p in params if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4},
                             {"params": nodecay, "weight_decay": 0.0}], lr=a.lr)
    B = a.batch
    spe = x.shape[0] // B
    total = spe * a.epochs
    warm = min(spe, total - 1)
    step, t0, done = 0, time.time(), 0
    for ep in range(a.epochs):
        perm = torch.randperm(x.shape[0], generator=g)
        for k in range(spe):
            lr = (a.lr * (0.01 + 0.99 * step / warm) if step < warm else
                  a.lr * 1e-3 + (a.lr - a.lr * 1e-3) * (1 + math.cos(math.pi * (step - warm) / (total - warm))) / 2)
            for grp in opt.param_groups:
                grp["lr"] = lr
            xb = x[perm[k * B:(k + 1) * B]]
            v = torch.cat([augment(xb, g), augment(xb, g)])
            loss = ntxent(proj(enc(v)), 0.2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            done += B
            if a.steps and step >= a.steps:
                break
        el = time.time() - t0
        print(f"epoch {ep + 1}: loss {loss.item():.4f}, {done / el:.0f} images/s", flush=True)
        if a.steps and step >= a.steps:
            break
    el = time.time() - t0
    print(f"torch {torch.__version__}, {a.threads} threads, batch {B}: {done} images "
          f"in {el:.1f} s -> {done / el:.0f} images/s (2 views each)")
    if a.probe:
        enc.eval()
        xte, yte = load("test")
        _, ytr = load("train")
        with torch.no_grad():
            ftr = torch.cat([enc(c) for c in load("train")[0].split(1000)])
            fte = torch.cat([enc(c) for c in xte.split(1000)])
        print(f"linear probe test accuracy: {100 * probe(ftr, ytr, fte, yte):.2f}%")


if __name__ == "__main__":
    main()
