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


def negcos(x0, x1, eps=1e-8):
    return -F.cosine_similarity(x0, x1, dim=1, eps=eps).mean()


def barlow(z_a, z_b, lambda_param=5e-3):
    a = F.batch_norm(z_a, None, None, training=True)
    b = F.batch_norm(z_b, None, None, training=True)
    c = a.T @ b / z_a.shape[0]
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    return on + lambda_param * off


def vicreg(z_a, z_b, lambda_param=25.0, mu_param=25.0, nu_param=1.0, eps=1e-4):
    def variance(x):
        return torch.mean(F.relu(1.0 - torch.sqrt(x.var(dim=0) + eps)))

    def covariance(x):
        x = x - x.mean(dim=0)
        n, d = x.shape
        cov = x.T @ x / (n - 1)
        off = ~torch.eye(d, dtype=torch.bool)
        return cov[off].pow(2).sum() / d
    inv = F.mse_loss(z_a, z_b)
    var = 0.5 * (variance(z_a) + variance(z_b))
    cov = covariance(z_a) + covariance(z_b)
    return lambda_param * inv + mu_param * var + nu_param * cov


def tico(z_a, z_b, C_old, beta=0.9, rho=20.0):
    """lightly TiCoLoss.forward: (loss, new C)."""
    a, b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
    C = beta * C_old + (1 - beta) * (a.T @ a) / a.shape[0]
    loss = 1 - (a * b).sum(dim=1).mean() + rho * ((a @ C) * a).sum(dim=1).mean()
    return loss, C.detach()


def hypersphere(z_a, z_b, t=1.0, lam=1.0, alpha=2.0):
    x, y = F.normalize(z_a), F.normalize(z_b)

    def lunif(v):
        return torch.pdist(v, p=2).pow(2).mul(-t).exp().mean().log()
    align = (x - y).norm(dim=1).pow(alpha).mean()
    return align + lam * (lunif(x) + lunif(y)) / 2


def koleo(x, eps=1e-8):
    pdist = torch.nn.PairwiseDistance(2, eps=eps)
    x = F.normalize(x, eps=eps, p=2, dim=-1)
    with torch.no_grad():
        dots = x @ x.t()
        dots.view(-1)[:: x.shape[0] + 1].fill_(-1)
        idx = torch.max(dots, dim=1)[1]
    return -torch.log(pdist(x, x[idx]) + eps).mean()


def mmcr(online, momentum, lmda=5e-3):
    z = torch.cat([online, momentum], dim=1)
    c = z.mean(dim=1)
    s_z = torch.linalg.svdvals(z)
    s_c = torch.linalg.svdvals(c)
    return -s_c.sum() + lmda * s_z.sum() / online.shape[0]


def _whiten(x, eps):
    xn = x - x.mean(dim=0, keepdim=True)
    cov = xn.T @ xn / (x.shape[0] - 1)
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    cov = (1 - eps) * cov + eps * eye
    inv = torch.linalg.solve_triangular(torch.linalg.cholesky(cov), eye,
                                        upper=False)
    return xn @ inv.T


def wmse(inp, perms, num_samples=2, w_size=256, eps=0.0):
    """lightly WMSELoss with norm_mse_loss; perms: one randperm per iter."""
    bs = inp.shape[0] // num_samples
    pairs = num_samples * (num_samples - 1) // 2
    loss = 0.0
    for perm in perms:
        z = torch.empty_like(inp)
        for idx in perm.view(-1, w_size):
            for i in range(num_samples):
                z[idx + i * bs] = _whiten(inp[idx + i * bs], eps)
        for i in range(num_samples - 1):
            for j in range(i + 1, num_samples):
                x0 = F.normalize(z[i * bs:(i + 1) * bs])
                x1 = F.normalize(z[j * bs:(j + 1) * bs])
                loss = loss + 2 - 2 * (x0 * x1).sum(dim=-1).mean()
    return loss / (len(perms) * pairs)


def patchify(imgs, p):
    n, c, h, w = imgs.shape
    x = imgs.reshape(n, c, h // p, p, w // p, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(n, (h // p) * (w // p), p * p * c)


def mae(imgs, pred, mask, p, norm_pix=True):
    target = patchify(imgs, p)
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
    loss = ((pred - target) ** 2).mean(dim=-1)
    return (loss * mask).sum() / mask.sum()
