"""Float64 references of the image augmentations (torchvision semantics,
written out here because torchvision is not installed).

  resized crop: torchvision F.resized_crop on a tensor = crop, then
                F.interpolate(mode="bilinear", align_corners=False,
                antialias=False) back to (H, W)
  gaussian blur: torchvision F.gaussian_blur: _get_gaussian_kernel1d,
                 reflect padding, separable conv (as its conv2d of the outer
                 product)
  brightness / contrast: torchvision _blend with 0 / the image mean, clamped

Writes crop<i>_{in,box,W,out}, blur<i>_{in,k,W,sigma,out}, jit<i>_{in,b,c,out}.
usage: augment.py [--seed S] [--out DIR]
"""
import numpy as np
import torch
import torch.nn.functional as F

import fixture


def resized_crop(img, top, left, h, w):
    """img (H, W) float64 tensor -> (H, W)."""
    H, W = img.shape
    crop = img[top:top + h, left:left + w][None, None]
    return F.interpolate(crop, size=(H, W), mode="bilinear",
                         align_corners=False)[0, 0]


def gaussian_kernel1d(k, sigma):
    half = (k - 1) * 0.5
    x = torch.linspace(-half, half, steps=k, dtype=torch.float64)
    pdf = torch.exp(-0.5 * (x / sigma).pow(2))
    return pdf / pdf.sum()


def gaussian_blur(img, k, sigma):
    k1 = gaussian_kernel1d(k, sigma)
    k2 = torch.outer(k1, k1)[None, None]
    x = F.pad(img[None, None], [k // 2] * 4, mode="reflect")
    return F.conv2d(x, k2)[0, 0]


def brightness(img, f):
    return (f * img).clamp(0, 1)


def contrast(img, f):
    return (f * img + (1 - f) * img.mean()).clamp(0, 1)


def main():
    args = fixture.parse_args(default_seed=6)
    g = np.random.default_rng(args.seed)
    out = {}
    for i in range(6):
        H, W = int(g.integers(2, 30)), int(g.integers(2, 30))
        if i == 0:
            H, W = 28, 28
        h, w = int(g.integers(1, H + 1)), int(g.integers(1, W + 1))
        top, left = int(g.integers(0, H - h + 1)), int(g.integers(0, W - w + 1))
        img = torch.tensor(g.random((H, W)), dtype=torch.float64)
        out[f"crop{i}_in"] = img
        out[f"crop{i}_box"] = np.array([top, left, h, w])
        out[f"crop{i}_W"] = np.array([W])
        out[f"crop{i}_out"] = resized_crop(img, top, left, h, w)
    for i in range(4):
        k = int(g.choice([1, 3, 5]))
        H, W = int(g.integers(k // 2 + 1, 20)), int(g.integers(k // 2 + 1, 20))
        sigma = float(g.uniform(0.1, 2.0))
        img = torch.tensor(g.random((H, W)), dtype=torch.float64)
        out[f"blur{i}_in"] = img
        out[f"blur{i}_k"] = np.array([k])
        out[f"blur{i}_W"] = np.array([W])
        out[f"blur{i}_sigma"] = np.array([sigma])
        out[f"blur{i}_out"] = gaussian_blur(img, k, sigma)
    for i in range(3):
        img = torch.tensor(g.random((7, 9)), dtype=torch.float64)
        b, c = float(g.uniform(0.6, 1.4)), float(g.uniform(0.6, 1.4))
        out[f"jit{i}_in"] = img
        out[f"jit{i}_b"] = np.array([b])
        out[f"jit{i}_c"] = np.array([c])
        out[f"jit{i}_out"] = contrast(brightness(img, b), c)
    fixture.write(args.out, "augment", out)


if __name__ == "__main__":
    main()
