"""PyTorch float64 reference for ss_clip: a replica of OpenCLIP's ClipLoss
(open_clip/loss.py, world_size = 1) fed with logit_scale = exp(t) and, when
cosine, features normalised as OpenCLIP's encoders return them.
Writes <out>/clip.bin (format: fixture.py)."""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402


class ClipLoss(torch.nn.Module):
    """OpenCLIP ClipLoss, single process: two logit GEMMs, two CEs."""

    def get_logits(self, image_features, text_features, logit_scale):
        logits_per_image = logit_scale * image_features @ text_features.T
        logits_per_text = logit_scale * text_features @ image_features.T
        return logits_per_image, logits_per_text

    def forward(self, image_features, text_features, logit_scale, reduction="mean"):
        lpi, lpt = self.get_logits(image_features, text_features, logit_scale)
        labels = torch.arange(lpi.shape[0], dtype=torch.long)
        return (F.cross_entropy(lpi, labels, reduction=reduction) +
                F.cross_entropy(lpt, labels, reduction=reduction)) / 2


# (N, D, cosine, log_scale, dloss, input std)
CASES = [
    (8, 16, 1, 2.6592600369327779, 1.0, 1.0),   # CLIP init t = log(1/0.07)
    (5, 7, 1, 4.6051701859880914, 0.7, 1.0),    # OpenCLIP clamp: scale 100
    (6, 9, 0, -0.5, 1.3, 0.6),                  # raw dot products
    (1, 4, 1, 1.0, 1.0, 1.0),                   # single pair: loss 0
    (12, 3, 1, 0.0, -0.4, 1.0),
]


def main():
    args = fixture.parse_args(default_seed=1234)
    g = torch.Generator().manual_seed(args.seed)
    out = {"ncases": [len(CASES)]}
    loss_fn = ClipLoss()
    for c, (N, D, cosine, t0, dloss, std) in enumerate(CASES):
        a = (torch.randn(N, D, generator=g, dtype=torch.float64) * std)
        b = (torch.randn(N, D, generator=g, dtype=torch.float64) * std)
        # the C side reads float32 inputs: round them here so both agree
        a = a.float().double().requires_grad_()
        b = b.float().double().requires_grad_()
        t = torch.tensor(t0, dtype=torch.float32).double().requires_grad_()
        dloss = float(torch.tensor(dloss, dtype=torch.float32))
        fa, fb = (F.normalize(a, dim=-1), F.normalize(b, dim=-1)) if cosine else (a, b)
        loss = loss_fn(fa, fb, t.exp())
        losses = loss_fn(fa, fb, t.exp(), reduction="none")
        (loss * dloss).backward()
        p = "c%d_" % c
        out.update({p + "N": [N], p + "D": [D], p + "cosine": [cosine],
                    p + "log_scale": [t.item()], p + "dloss": [dloss],
                    p + "a": a, p + "b": b, p + "loss": [loss.item()],
                    p + "losses": losses, p + "da": a.grad, p + "db": b.grad,
                    p + "dlog_scale": [t.grad.item()]})
    print(fixture.write(args.out, "clip", out))


if __name__ == "__main__":
    main()
