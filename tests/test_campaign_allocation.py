"""Budget allocation (predictor.campaigns.allocation): the vectorised allocations against the plain greedy
loops they replace, ties included."""

from __future__ import annotations

import numpy as np
import pytest


def _reference_budget(customer, playbook, net, cost, budget, n):
    """The plain greedy loop over every pair sorted by net value per cost (ties: net value, pair order)."""
    assigned = np.full(n, -1)
    ratio = net / np.maximum(cost, 1e-9)
    remaining = budget
    for i in np.lexsort((-net, -ratio)):
        if assigned[customer[i]] < 0 and cost[i] <= remaining:
            assigned[customer[i]] = playbook[i]
            remaining -= cost[i]
    return assigned, remaining


def _reference_best(customer, playbook, net, cost, n):
    assigned = np.full(n, -1)
    order = np.lexsort((cost, -net, customer))
    first = np.unique(customer[order], return_index=True)[1]
    assigned[customer[order][first]] = playbook[order][first]
    return assigned


@pytest.mark.parametrize("seed", range(6))
def test_fast_allocation_equals_the_plain_greedy_loop(seed):
    """The vectorised allocations give exactly the assignments of the simple algorithms, ties included."""
    from predictor.campaigns.allocation import allocate_budget, best_per_customer

    rng = np.random.default_rng(seed)
    n, k = 3000, 4
    parts = []
    for j in range(k):  # pairs grouped by playbook, customers ascending, as plan_campaigns builds them
        rows = np.flatnonzero(rng.random(n) < 0.6)
        parts.append((rows, np.full(len(rows), j)))
    customer = np.concatenate([r for r, _ in parts])
    playbook = np.concatenate([p for _, p in parts])
    # Coarse values so that ratios, net values and costs tie often.
    net = rng.integers(1, 6, len(customer)).astype(float)
    cost = rng.choice([0.5, 1.0, 2.0], len(customer))
    for budget in (0.5, 37.0, 800.0, 1e9):
        want, want_left = _reference_budget(customer, playbook, net, cost, budget, n)
        got = np.full(n, -1)
        left = allocate_budget(got, customer, playbook, net, cost, budget)
        assert np.array_equal(got, want) and left == pytest.approx(want_left), budget
    got = np.full(n, -1)
    best_per_customer(got, customer, playbook, net, cost, k)
    assert np.array_equal(got, _reference_best(customer, playbook, net, cost, n))
