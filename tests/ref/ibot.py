"""PyTorch float64 reference for ss_ibot (tests/test_ibot.c).

lightly_ibot() replicates lightly IBOTPatchLoss.forward (centre passed in,
not updated). Cases c<k>_<field>: mask (B,T) int, teacher (M,K), student
(M,K), center (K), B, T, M, K, teacher_temp, student_temp, loss, losses (M,
unweighted per-token), dstudent, center_next (momentum 0.9 update).
Usage: ibot.py [--seed S] [--out DIR].
"""
import numpy as np
import torch
import torch.nn.functional as F

import fixture

torch.set_default_dtype(torch.float64)


def lightly_ibot(teacher_out, student_out, mask, center, teacher_temp,
                 student_temp):
    """lightly IBOTPatchLoss.forward; mask: bool (B, H, W) or (B, T)."""
    teacher_softmax = F.softmax((teacher_out - center) / teacher_temp, dim=-1)
    student_log_softmax = F.log_softmax(student_out / student_temp, dim=-1)
    loss = -torch.sum(teacher_softmax * student_log_softmax, dim=-1)
    dims = tuple(range(1, mask.dim()))
    num_masked = mask.sum(dim=dims, keepdim=True).clamp(min=1.0)
    weight = (1.0 / num_masked).expand_as(mask)[mask]
    return (loss * weight).sum() / mask.shape[0], loss


def make_case(rng, B, T, K, tt, ts, p, scale=1.0):
    mask = torch.tensor(rng.random((B, T)) < p)
    mask[0, :] = False  # one image without masked tokens
    if B > 1:
        mask[1, 0] = True
    M = int(mask.sum())
    teacher = torch.tensor(rng.standard_normal((M, K)) * scale)
    student = torch.tensor(rng.standard_normal((M, K)) * scale,
                           requires_grad=True)
    center = torch.tensor(rng.standard_normal(K) * 0.3)
    # 3-d mask as lightly takes it: (B, 1, T)
    loss, per = lightly_ibot(teacher, student, mask.view(B, 1, T), center,
                             tt, ts)
    loss.backward()
    bc = teacher.mean(0) if M > 0 else torch.zeros(K)
    return {"mask": mask.long(), "teacher": teacher, "student": student,
            "center": center, "B": [B], "T": [T], "M": [M], "K": [K],
            "teacher_temp": [tt], "student_temp": [ts], "loss": [loss.item()],
            "losses": per, "dstudent": student.grad,
            "center_next": center * 0.9 + bc * 0.1}


def main():
    args = fixture.parse_args(default_seed=20261206)
    rng = np.random.default_rng(args.seed)

    def n(lo, hi):
        return int(rng.integers(lo, hi + 1))

    specs = [  # B, T, K, teacher_temp, student_temp, mask prob, scale
        (n(2, 4), n(4, 9), n(3, 17), 0.04, 0.1, 0.5, 1.0),
        (n(3, 5), n(2, 6), n(2, 7), 0.07, 0.2, 0.3, 1.0),
        (2, 3, 1, 0.04, 0.1, 0.9, 1.0),
        (n(2, 3), n(4, 8), n(3, 9), 0.04, 0.1, 0.6, 25.0),
    ]
    entries = {"ncases": [len(specs)]}
    for k, spec in enumerate(specs):
        for name, value in make_case(rng, *spec).items():
            entries["c%d_%s" % (k, name)] = value
    fixture.write(args.out, "ibot", entries)


if __name__ == "__main__":
    main()
