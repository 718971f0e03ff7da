"""PyTorch float64 reference for ss_dino and the centre (tests/test_dino.c).

lightly_dino() replicates lightly DINOLoss.forward (teacher list, student
list, explicit teacher_temp); lightly_center_update() its centre EMA
(center_mode "mean"); lightly_schedule() its teacher_temp_schedule.
Cases c<k>_<field>: teacher (G,N,K), student (V,N,K), center (K), G, V, N,
K, teacher_temp, student_temp, momentum, loss, losses (N), dstudent,
center_next (K, after one update with this batch's teacher). Schedule
cases s<k>_<field>: warmup, final, epochs, values (for epoch 0..E+2).
Usage: dino.py [--seed S] [--out DIR].
"""
import numpy as np
import torch
import torch.nn.functional as F

import fixture

torch.set_default_dtype(torch.float64)


def lightly_dino(teacher_out, student_out, center, teacher_temp,
                 student_temp):
    """lightly DINOLoss.forward: mean cross-entropy over skipped-diagonal
    (teacher view, student view) pairs."""
    t = torch.stack(teacher_out)
    t_out = F.softmax((t - center) / teacher_temp, dim=-1)
    s = torch.stack(student_out)
    s_out = F.log_softmax(s / student_temp, dim=-1)
    loss = -torch.einsum("tbd,sbd->ts", t_out, s_out)
    loss.fill_diagonal_(0)
    n_terms = loss.numel() - loss.diagonal().numel()
    return loss.sum() / (n_terms * t.shape[1])


def per_sample_dino(teacher, student, center, teacher_temp, student_temp):
    """Per-sample losses (N) whose mean is lightly_dino."""
    G, V = teacher.shape[0], student.shape[0]
    t_out = F.softmax((teacher - center) / teacher_temp, dim=-1)
    s_out = F.log_softmax(student / student_temp, dim=-1)
    l = -torch.einsum("tbd,sbd->tsb", t_out, s_out)
    keep = torch.ones(G, V)
    for g in range(min(G, V)):
        keep[g, g] = 0
    return (l * keep[:, :, None]).sum((0, 1)) / keep.sum()


def lightly_center_update(center, teacher, momentum):
    batch_center = torch.mean(teacher, dim=(0, 1))
    return center * momentum + batch_center * (1 - momentum)


def lightly_schedule(warmup, final, epochs, epoch):
    sched = torch.linspace(start=warmup, end=final, steps=epochs)
    return float(sched[epoch]) if epoch < epochs else final


def make_case(rng, G, V, N, K, tt, ts, m, scale=1.0):
    teacher = torch.tensor(rng.standard_normal((G, N, K)) * scale)
    student = torch.tensor(rng.standard_normal((V, N, K)) * scale,
                           requires_grad=True)
    center = torch.tensor(rng.standard_normal(K) * 0.3)
    loss = lightly_dino(list(teacher), list(student), center, tt, ts)
    losses = per_sample_dino(teacher, student.detach(), center, tt, ts)
    assert abs(losses.mean().item() - loss.item()) < 1e-12
    loss.backward()
    return {"teacher": teacher, "student": student, "center": center,
            "G": [G], "V": [V], "N": [N], "K": [K], "teacher_temp": [tt],
            "student_temp": [ts], "momentum": [m], "loss": [loss.item()],
            "losses": losses, "dstudent": student.grad,
            "center_next": lightly_center_update(center, teacher, m)}


def main():
    args = fixture.parse_args(default_seed=20261205)
    rng = np.random.default_rng(args.seed)

    def n(lo, hi):
        return int(rng.integers(lo, hi + 1))

    specs = [  # G, V, N, K, teacher_temp, student_temp, momentum, scale
        (2, 2, n(2, 6), n(3, 17), 0.04, 0.1, 0.9, 1.0),   # lightly defaults
        (2, 6, n(2, 5), n(3, 13), 0.04, 0.1, 0.9, 1.0),   # multi-crop
        (1, 3, n(1, 4), n(2, 9), 0.07, 0.2, 0.5, 1.0),
        (3, 2, n(2, 4), n(2, 9), 0.05, 0.1, 0.0, 1.0),    # G > V
        (2, 4, 1, 1, 0.04, 0.1, 0.9, 1.0),                 # K = 1
        (2, 3, n(2, 5), n(3, 9), 0.04, 0.1, 0.99, 30.0),  # big logits
    ]
    entries = {"ncases": [len(specs)]}
    for k, spec in enumerate(specs):
        for name, value in make_case(rng, *spec).items():
            entries["c%d_%s" % (k, name)] = value
    sched = [(0.04, 0.07, 30), (0.02, 0.04, 1), (0.01, 0.03, 4), (0.05, 0.04, 0)]
    entries["nsched"] = [len(sched)]
    for k, (w, f, e) in enumerate(sched):
        entries["s%d_warmup" % k] = [w]
        entries["s%d_final" % k] = [f]
        entries["s%d_epochs" % k] = [e]
        entries["s%d_values" % k] = [lightly_schedule(w, f, e, ep)
                                     for ep in range(e + 3)]
    fixture.write(args.out, "dino", entries)


if __name__ == "__main__":
    main()
