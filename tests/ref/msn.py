"""PyTorch float64 reference for ss_msn (MSN and PMSN, tests/test_msn.c).

lightly_msn() replicates lightly MSNLoss.forward (anchors (V*N, D) with
anchor row r belonging to target r % N, prototypes (K, D)) and, with
prior="power_law", PMSNLoss after the fix of lightly#1340:
F.kl_div(mean_anchor_probs.log(), power_dist, reduction="sum").
Cases c<k>_<field>: anchors (V,N,D), targets (N,D), prototypes (K,D), V, N,
K, D, temperature, sharpen, iterations, weight, prior (0/1), exponent,
loss, losses (V,N cross-entropies), danchors, dprototypes.
Usage: msn.py [--seed S] [--out DIR].
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

import fixture

torch.set_default_dtype(torch.float64)


def prototype_probabilities(queries, prototypes, temperature):
    return F.softmax(torch.matmul(queries, prototypes.T) / temperature, dim=1)


def sharpen(probabilities, temperature):
    probabilities = probabilities ** (1.0 / temperature)
    probabilities /= torch.sum(probabilities, dim=1, keepdim=True)
    return probabilities


@torch.no_grad()
def sinkhorn(probabilities, iterations=3):
    if iterations <= 0:
        return probabilities
    num_targets, num_prototypes = probabilities.shape
    probabilities = probabilities.T
    probabilities = probabilities / torch.sum(probabilities)
    for _ in range(iterations):
        probabilities /= torch.sum(probabilities, dim=1, keepdim=True)
        probabilities /= num_prototypes
        probabilities /= torch.sum(probabilities, dim=0, keepdim=True)
        probabilities /= num_targets
    probabilities *= num_targets
    return probabilities.T


def power_law_distribution(size, exponent):
    k = torch.arange(1, size + 1)
    power_dist = k ** (-exponent)
    return power_dist / power_dist.sum()


def lightly_msn(anchors, targets, prototypes, temperature=0.1,
                sinkhorn_iterations=3, regularization_weight=1.0,
                target_sharpen_temperature=0.25, prior="uniform",
                power_law_exponent=0.25):
    """Returns the loss and the per-anchor cross-entropies."""
    num_views = anchors.shape[0] // targets.shape[0]
    anchors = F.normalize(anchors, dim=1)
    targets = F.normalize(targets, dim=1)
    prototypes = F.normalize(prototypes, dim=1)
    anchor_probs = prototype_probabilities(anchors, prototypes, temperature)
    with torch.no_grad():
        target_probs = prototype_probabilities(targets, prototypes,
                                               temperature)
        target_probs = sharpen(target_probs, target_sharpen_temperature)
        if sinkhorn_iterations > 0:
            target_probs = sinkhorn(target_probs, sinkhorn_iterations)
        target_probs = target_probs.repeat((num_views, 1))
    ce = torch.sum(torch.log(anchor_probs ** (-target_probs)), dim=1)
    loss = torch.mean(ce)
    if regularization_weight > 0:
        mean_anchor_probs = torch.mean(anchor_probs, dim=0)
        if prior == "uniform":
            reg = -torch.sum(torch.log(mean_anchor_probs ** (-mean_anchor_probs)))
            reg += math.log(float(len(mean_anchor_probs)))
        else:
            power_dist = power_law_distribution(len(mean_anchor_probs),
                                                power_law_exponent)
            reg = F.kl_div(input=mean_anchor_probs.log(), target=power_dist,
                           reduction="sum")
        loss = loss + regularization_weight * reg
    return loss, ce


def make_case(rng, V, N, K, D, t, sharp, iters, w, prior, e):
    anchors = torch.tensor(rng.standard_normal((V, N, D)), requires_grad=True)
    targets = torch.tensor(rng.standard_normal((N, D)))
    protos = torch.tensor(rng.standard_normal((K, D)), requires_grad=True)
    loss, ce = lightly_msn(anchors.reshape(V * N, D), targets, protos, t,
                           iters, w, sharp,
                           "power_law" if prior else "uniform", e)
    loss.backward()
    return {"anchors": anchors, "targets": targets, "prototypes": protos,
            "V": [V], "N": [N], "K": [K], "D": [D], "temperature": [t],
            "sharpen": [sharp], "iterations": [iters], "weight": [w],
            "prior": [prior], "exponent": [e], "loss": [loss.item()],
            "losses": ce.reshape(V, N), "danchors": anchors.grad,
            "dprototypes": protos.grad}


def main():
    args = fixture.parse_args(default_seed=20261208)
    rng = np.random.default_rng(args.seed)

    def n(lo, hi):
        return int(rng.integers(lo, hi + 1))

    specs = [  # V, N, K, D, temperature, sharpen, iters, weight, prior, exp
        (1, n(3, 8), n(3, 12), n(2, 9), 0.1, 0.25, 3, 1.0, 0, 0.25),  # MSN
        (3, n(2, 5), n(3, 10), n(2, 8), 0.1, 0.25, 3, 1.0, 0, 0.25),
        (2, n(2, 5), n(3, 10), n(2, 8), 0.2, 0.5, 0, 1.0, 0, 0.25),   # no SK
        (2, n(2, 5), n(3, 10), n(2, 8), 0.1, 0.25, 3, 0.0, 0, 0.25),  # no reg
        (2, n(2, 6), n(3, 12), n(2, 8), 0.1, 0.25, 3, 1.0, 1, 0.25),  # PMSN
        (1, n(2, 6), n(3, 12), n(2, 8), 0.1, 0.25, 0, 2.0, 1, 0.75),
        (2, 1, 1, 1, 0.1, 0.25, 3, 1.0, 0, 0.25),                     # tiny
    ]
    entries = {"ncases": [len(specs)]}
    for k, spec in enumerate(specs):
        for name, value in make_case(rng, *spec).items():
            entries["c%d_%s" % (k, name)] = value
    fixture.write(args.out, "msn", entries)


if __name__ == "__main__":
    main()
