"""PyTorch float64 reference for ss_moco: a replica of lightly's
NTXentLoss(memory_bank_size=K) (lightly/loss/ntx_ent_loss.py) whose memory
bank holds the given queue. queries = out0, keys = out1; the negatives come
only from the bank, read before it is updated. lightly's bank stores
normalised keys, so a bank of unit rows reproduces lightly exactly; for the
extra cases (raw rows, cosine = 0) the replica follows ss_moco's contract
(bank rows normalised with the inputs; or no normalisation at all).
Writes <out>/moco.bin (format: fixture.py)."""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402


class MemoryBank(torch.nn.Module):
    """lightly MemoryBankModule: a (D, K) bank, returned as a detached clone
    before the new keys are written (not exercised here: one step)."""

    def __init__(self, bank):  # bank: (K, D)
        super().__init__()
        self.bank = bank.T.clone()

    def forward(self, output):
        return output, self.bank.clone().detach()


class NTXentLossWithBank(torch.nn.Module):
    def __init__(self, bank, temperature=0.5, cosine=True):
        super().__init__()
        self.memory = MemoryBank(bank)
        self.temperature = temperature
        self.cosine = cosine

    def forward(self, out0, out1, reduction="mean"):
        if self.cosine:
            out0 = F.normalize(out0, dim=1)
            out1 = F.normalize(out1, dim=1)
        out1, negatives = self.memory(out1)
        if self.cosine:  # no-op for lightly's bank of unit keys
            negatives = F.normalize(negatives, dim=0)
        sim_pos = torch.einsum("nc,nc->n", out0, out1).unsqueeze(-1)
        sim_neg = torch.einsum("nc,ck->nk", out0, negatives)
        logits = torch.cat([sim_pos, sim_neg], dim=1) / self.temperature
        labels = torch.zeros(logits.shape[0], dtype=torch.long)
        return F.cross_entropy(logits, labels, reduction=reduction)


# (N, K, D, cosine, unit bank, temperature, dloss, input std)
CASES = [
    (8, 40, 16, 1, 1, 0.5, 1.0, 1.0),     # lightly default temperature
    (6, 19, 7, 1, 1, 0.2, 0.75, 1.0),     # MoCo v2 temperature
    (4, 11, 5, 1, 0, 0.1, 1.25, 1.0),     # raw bank rows, normalised by us
    (5, 13, 6, 0, 0, 1.0, 1.0, 0.5),      # raw dot products
    (1, 1, 3, 1, 1, 0.07, -0.5, 1.0),     # one query, one negative
]


def main():
    args = fixture.parse_args(default_seed=2468)
    g = torch.Generator().manual_seed(args.seed)
    out = {"ncases": [len(CASES)]}
    for c, (N, K, D, cosine, unit, temp, dloss, std) in enumerate(CASES):
        def rnd(*shape):  # rounded to float32, as the C side reads it
            return (torch.randn(*shape, generator=g, dtype=torch.float64) * std).float().double()
        q, k, queue = rnd(N, D), rnd(N, D), rnd(K, D)
        if unit:  # what lightly's bank holds: normalised keys, stored in float32
            queue = F.normalize(queue, dim=1).float().double()
        q.requires_grad_()
        k.requires_grad_()
        temp = float(torch.tensor(temp, dtype=torch.float32))
        dl = float(torch.tensor(dloss, dtype=torch.float32))
        crit = NTXentLossWithBank(queue, temperature=temp, cosine=bool(cosine))
        loss = crit(q, k)
        losses = crit(q, k, reduction="none")
        (loss * dl).backward()
        p = "c%d_" % c
        out.update({p + "N": [N], p + "K": [K], p + "D": [D],
                    p + "cosine": [cosine], p + "temperature": [temp],
                    p + "dloss": [dl], p + "q": q, p + "k": k,
                    p + "queue": queue, p + "loss": [loss.item()],
                    p + "losses": losses, p + "dq": q.grad, p + "dk": k.grad})
    print(fixture.write(args.out, "moco", out))


if __name__ == "__main__":
    main()
