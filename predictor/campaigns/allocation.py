"""Who gets which campaign: each customer at most one, at positive expected net value; without a
budget everyone gets their best campaign, with one the pairs are funded greedily by net value per unit
cost. The budget checks live here too, so the tools refuse a budget with the planner's own reason."""

from __future__ import annotations

import math

import numpy as np

from predictor.campaigns.catalogue import CampaignError

MAX_BUDGET = 1e9


def budget_problem(value: float) -> str | None:
    """Why ``value`` cannot be a budget (not finite, not above 0, above MAX_BUDGET), or None when it can.
    A budget is never rewritten into a usable one: the caller refuses it with this reason."""
    if math.isnan(value):
        return "Budget must be a positive amount, got nan (not a number)."
    if math.isinf(value):
        return (f"Budget must be a positive finite amount, got {value}."
                if value < 0 else f"Budget {value} is implausibly large (not finite; the most is {MAX_BUDGET:,.0f}).")
    if value <= 0:
        return f"Budget must be a positive amount, got {value:g}."
    if value > MAX_BUDGET:
        shown = f"{value:,.0f}" if value < 1e15 else f"{value:g}"
        return f"Budget {shown} is implausibly large (over {MAX_BUDGET:,.0f})."
    return None


def check_budget(budget: float | None) -> float | None:
    """The budget as a float (None: no budget); a budget that cannot be one is refused, never rewritten."""
    if budget is None:
        return None
    try:
        value = float(budget)
    except (TypeError, ValueError):
        raise CampaignError(f"Budget '{budget}' is not a number.", hint="give the budget as a plain amount, "
                            "e.g. 5000", field="budget") from None
    problem = budget_problem(value)
    if problem is not None:
        hint = ("check the units (the data's currency, not cents) or omit the budget to plan without a limit"
                if value > 0 else "give a budget above 0, or omit it to plan without a budget")
        raise CampaignError(problem, hint=hint, field="budget")
    return value


def greedy_fill(assigned: np.ndarray, customer: np.ndarray, playbook: np.ndarray, cost: np.ndarray,
                 budget: float) -> float:
    """Walk (customer, playbook, cost) pairs in priority order, funding a pair when its customer has no
    campaign yet and its cost fits what is left; returns the budget left.

    Same result as the plain loop, in two steps: while the running cost of each customer's first pair
    stays within the budget every such pair is funded (one vectorised prefix); the loop then only walks
    the pairs that could still fit, which on 1M customers is a small remainder.
    """
    first = np.zeros(len(customer), dtype=bool)
    first[np.unique(customer, return_index=True)[1]] = True
    first_cost = np.where(first, cost, 0.0)
    spent = np.cumsum(first_cost)
    prefix = int(np.searchsorted(spent, budget, side="right"))  # pairs [0, prefix) are all affordable
    funded = first[:prefix]
    assigned[customer[:prefix][funded]] = playbook[:prefix][funded]
    remaining = budget - (float(spent[prefix - 1]) if prefix else 0.0)
    tail = np.arange(prefix, len(customer))
    tail = tail[(cost[tail] <= remaining) & (assigned[customer[tail]] < 0)]
    if len(tail):
        cheapest = float(cost[tail].min())
        for ci, pi, co in zip(customer[tail].tolist(), playbook[tail].tolist(), cost[tail].tolist()):
            if remaining < cheapest:
                break
            if assigned[ci] < 0 and co <= remaining:
                assigned[ci] = pi
                remaining -= co
    return remaining


def best_per_customer(assigned: np.ndarray, customer: np.ndarray, playbook: np.ndarray, net: np.ndarray,
                       cost: np.ndarray, n_playbooks: int) -> None:
    """No budget: each candidate customer gets the playbook with the highest net value, the cheaper one
    on a tie, the earlier playbook after that (one pass per playbook instead of sorting all pairs)."""
    best_net = np.full(len(assigned), -np.inf)
    best_cost = np.full(len(assigned), np.inf)
    # Pairs come grouped by playbook, in playbook order: each playbook's pairs are one slice.
    bounds = np.searchsorted(playbook, np.arange(n_playbooks + 1))
    for j in range(n_playbooks):
        pick = slice(bounds[j], bounds[j + 1])
        rows, pair_net, pair_cost = customer[pick], net[pick], cost[pick]
        held_net, held_cost = best_net[rows], best_cost[rows]
        better = (pair_net > held_net) | ((pair_net == held_net) & (pair_cost < held_cost))
        rows = rows[better]
        best_net[rows], best_cost[rows], assigned[rows] = pair_net[better], pair_cost[better], j


def allocate_budget(assigned: np.ndarray, customer: np.ndarray, playbook: np.ndarray, net: np.ndarray,
                     cost: np.ndarray, budget: float) -> float:
    """Greedy by net value per unit cost (ties: higher net value, then pair order) within the budget.

    Sorting every pair is the cost on 1M customers, yet a budget funds only the best few: sort the pairs
    whose ratio reaches the k-th best (ties included, so the order is exact), fund them, then walk only
    the other pairs that could still fit what is left. Same result as sorting everything.
    """
    ratio = net / np.maximum(cost, 1e-9)
    m = len(customer)
    k = int(min(m, max(1024, 4 * budget / max(float(cost.mean()), 1e-9))))
    head = np.arange(m)
    if k < m:
        head = np.flatnonzero(ratio >= np.partition(ratio, m - k)[m - k])
    head = head[np.lexsort((-net[head], -ratio[head]))]
    remaining = greedy_fill(assigned, customer[head], playbook[head], cost[head], budget)
    if len(head) < m:
        rest = np.ones(m, dtype=bool)
        rest[head] = False
        tail = np.flatnonzero(rest & (cost <= remaining) & (assigned[customer] < 0))
        if len(tail):
            tail = tail[np.lexsort((-net[tail], -ratio[tail]))]
            remaining = greedy_fill(assigned, customer[tail], playbook[tail], cost[tail], remaining)
    return remaining


def unspent_budget_notes(budget: float, spent: float, control_cost: float, *, control: int, left_out: int,
                         cheapest_left_out: float | None, audience_size: int, chosen: int,
                         currency: str) -> list[str]:
    """What the budget left out and why part of it stays unspent, each cause with its figure.

    `spent` is what the contacted customers cost; `control_cost` what the `control` customers held out
    of the chosen would have cost (they are drawn from the chosen and not contacted);
    `left_out` customers had a worthwhile campaign the budget did not reach, the cheapest costing
    `cheapest_left_out`; `chosen` of the `audience_size` customers were chosen. Whatever the control
    groups do not explain is left because the next worthwhile contact does not fit, or because nobody
    else in the audience is worth a contact (every customer already has one, or the rest have no
    positive expected net value).
    """
    notes = []
    if left_out:
        notes.append(f"{left_out:,} customers with a positive-value campaign were left out by the budget.")
    unspent = round(budget - spent, 2)
    if unspent < 0.01:
        return notes
    held = min(round(control_cost, 2), unspent)
    rest = round(unspent - held, 2)
    causes = []
    if held >= 0.01:
        people = ("1 control-group customer, who is" if control == 1 else
                  f"{control:,} control-group customers, who are")
        causes.append(f"{currency}{held:,.2f} would have paid for the {people} held out and not contacted so "
                      "the campaign's real lift can be measured")
    if rest >= 0.01:
        if left_out and cheapest_left_out is not None:
            why = (f"the cheapest remaining worthwhile contact costs {currency}{cheapest_left_out:,.2f}, more "
                   "than what is left")
        elif chosen >= audience_size:
            why = f"every one of the {audience_size:,} customers in the audience already has a campaign"
        else:
            why = (f"no other customer in the audience has a positive expected net value ({audience_size - chosen:,}"
                   f" of the {audience_size:,} have none under these playbooks)")
        causes.append(f"{'the other ' if causes else ''}{currency}{rest:,.2f} because {why}")
    notes.append(f"{currency}{unspent:,.2f} of the {currency}{budget:,.2f} budget stays unspent: "
                 + "; ".join(causes) + ".")
    return notes
