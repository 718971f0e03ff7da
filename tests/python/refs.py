"""Pure-PyTorch references, written the way lightly (OpenCLIP, big_vision)
writes each loss, for float64 comparison with selfsup.torch."""
import math

import torch
import torch.nn.functional as F


def ntxent(out0, out1, temperature=0.5):
    n = out0.shape[0]
    out0, out1 = F.normalize(out0, dim=1), F.normalize(out1, dim=1)
    diag = torch.eye(n, dtype=torch.bool)
    l00 = out0 @ out0.T / temperature
    l01 = out0 @ out1.T / temperature
    l10 = out1 @ out0.T / temperature
    l11 = out1 @ out1.T / temperature
    l00 = l00[~diag].view(n, -1)
    l11 = l11[~diag].view(n, -1)
    logits = torch.cat([torch.cat([l01, l00], 1), torch.cat([l10, l11], 1)], 0)
    labels = torch.arange(n).repeat(2)
    return F.cross_entropy(logits, labels)


def ntxent_bank(out0, out1, bank, temperature=0.5):
    """lightly NTXentLoss with a memory bank; bank: (K, D) unit rows."""
    out0, out1 = F.normalize(out0, dim=1), F.normalize(out1, dim=1)
    sim_pos = torch.einsum("nc,nc->n", out0, out1).unsqueeze(-1)
    sim_neg = torch.einsum("nc,kc->nk", out0, bank)
    logits = torch.cat([sim_pos, sim_neg], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(out0.shape[0], dtype=torch.long))


def mises_fisher_weights(out0, out1, sigma=0.5):
    sim = torch.einsum("nm,nm->n", out0.detach(), out1.detach()) / sigma
    return 2 - out0.shape[0] * F.softmax(sim, dim=0)


def dcl(out0, out1, temperature=0.1, sigma=None):
    out0, out1 = F.normalize(out0, dim=1), F.normalize(out1, dim=1)

    def half(a, b):
        n = a.shape[0]
        diag = torch.eye(n, dtype=torch.bool)
        s00 = a @ a.T / temperature
        s01 = a @ b.T / temperature
        pos = -s01[diag]
        if sigma is not None:
            pos = pos * mises_fisher_weights(a, b, sigma)
        s00 = s00[~diag].view(n, -1)
        s01 = s01[~diag].view(n, -1)
        return (pos + torch.logsumexp(s00, 1) + torch.logsumexp(s01, 1)).mean()
    return 0.5 * (half(out0, out1) + half(out1, out0))


def supcon(out0, out1, labels=None, temperature=0.5, rescale=True):
    z = F.normalize(torch.vstack((out0, out1)), dim=1)
    n = out0.shape[0]
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), -1e9)
    if labels is None:
        labels = torch.arange(n)
    labels = labels.repeat(2)
    soft = torch.eq(labels, labels.view(-1, 1)).to(z.dtype)
    soft.fill_diagonal_(0.0)
    soft = soft / soft.sum(dim=1, keepdim=True)
    loss = -(soft * F.log_softmax(logits, -1)).sum(-1).mean()
    return loss * temperature if rescale else loss


def dino(teacher, student, center, teacher_temp=0.04, student_temp=0.1):
    t = torch.stack(teacher)
    t_out = F.softmax((t - center) / teacher_temp, dim=-1)
    s_out = F.log_softmax(torch.stack(student) / student_temp, dim=-1)
    loss = -torch.einsum("tbd,sbd->ts", t_out, s_out)
    loss = loss * (1 - torch.eye(*loss.shape, dtype=loss.dtype))
    n_terms = loss.numel() - loss.diagonal().numel()
    return loss.sum() / (n_terms * t.shape[1])


def ibot(teacher, student, mask, center, teacher_temp=0.04, student_temp=0.1):
    t_sm = F.softmax((teacher - center) / teacher_temp, dim=-1)
    s_ls = F.log_softmax(student / student_temp, dim=-1)
    loss = -torch.sum(t_sm * s_ls, dim=-1)
    per_image = mask.sum(dim=(1, 2), keepdim=True).clamp(min=1.0)
    weight = (1.0 / per_image).expand_as(mask)[mask]
    return (loss * weight).sum() / mask.shape[0]


@torch.no_grad()
def swav_sinkhorn(scores, iterations=3, epsilon=0.05):
    Q = torch.exp(scores / epsilon).t()
    Q = Q / Q.sum()
    B, K = Q.shape[1], Q.shape[0]
    for _ in range(iterations):
        Q = Q / Q.sum(dim=1, keepdim=True) / K
        Q = Q / Q.sum(dim=0, keepdim=True) / B
    return (Q * B).t()


def swav(high, low, queue=None, temperature=0.1, iterations=3, epsilon=0.05):
    n_crops = len(high) + len(low)
    loss = 0.0
    for i in range(len(high)):
        out = high[i].detach()
        if queue is not None:
            out = torch.cat((out, queue[i].detach()))
        q = swav_sinkhorn(out, iterations, epsilon)[: len(high[i])]
        sub = 0.0
        for v in range(n_crops):
            if v == i:
                continue
            z = high[v] if v < len(high) else low[v - len(high)]
            sub = sub - torch.mean(torch.sum(
                q * F.log_softmax(z / temperature, dim=1), dim=1))
        loss = loss + sub / (n_crops - 1)
    return loss / len(high)


@torch.no_grad()
def msn_sinkhorn(p, iterations=3):
    n, k = p.shape
    p = p.T / p.sum()
    for _ in range(iterations):
        p = p / p.sum(dim=1, keepdim=True) / k
        p = p / p.sum(dim=0, keepdim=True) / n
    return (p * n).T


def msn(anchors, targets, prototypes, temperature=0.1, sharpen=0.25,
        iterations=3, weight=1.0, power_law_exponent=None):
    V = anchors.shape[0] // targets.shape[0]
    a = F.normalize(anchors, dim=1)
    w = F.normalize(prototypes, dim=1)
    probs = F.softmax(a @ w.T / temperature, dim=1)
    with torch.no_grad():
        t = F.normalize(targets, dim=1)
        tp = F.softmax(t @ w.T / temperature, dim=1)
        tp = tp ** (1.0 / sharpen)
        tp = tp / tp.sum(dim=1, keepdim=True)
        if iterations > 0:
            tp = msn_sinkhorn(tp, iterations)
        tp = tp.repeat((V, 1))
    loss = torch.mean(torch.sum(-tp * torch.log(probs), dim=1))
    pbar = probs.mean(dim=0)
    K = pbar.shape[0]
    if power_law_exponent is None:
        reg = torch.sum(pbar * torch.log(pbar)) + math.log(K)
    else:
        prior = torch.tensor([i ** -power_law_exponent for i in range(1, K + 1)],
                             dtype=pbar.dtype)
        prior = prior / prior.sum()
        reg = F.kl_div(pbar.log(), prior, reduction="sum")
    return loss + weight * reg


def clip(image, text, logit_scale):
    image, text = F.normalize(image, dim=1), F.normalize(text, dim=1)
    logits = logit_scale * image @ text.T
    labels = torch.arange(image.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def siglip(image, text, logit_scale, logit_bias):
    image, text = F.normalize(image, dim=1), F.normalize(text, dim=1)
    logits = logit_scale * image @ text.T + logit_bias
    n = image.shape[0]
    labels = 2 * torch.eye(n, dtype=logits.dtype) - 1
    return -F.logsigmoid(labels * logits).sum() / n
