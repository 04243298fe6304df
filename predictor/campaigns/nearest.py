"""The nearest plan that works, for a request whose plan came out empty.

Two kinds of nearby request are tried: the same goal with one filter relaxed (a tier or lifecycle
stage next to the ones asked added, or one filter dropped; the smallest audience that gives a plan is
the nearest), and, when the audience itself was not empty, the same audience under another goal (the
one with the highest expected net value). Nothing is substituted: the request still fails, and the
error names what was changed and the figures of each nearby plan, so a marketer can ask for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from predictor.campaigns.catalogue import CampaignError
from predictor.campaigns.wording import campaign_words, customers_word, describe_customers, either, filter_spec, \
    playbook_label
from predictor.customers.audience import LIFECYCLE_STAGES, TIERS, CustomerFilter

# (goal, playbook names, filter) -> the plan, or None when that request gives no plan either.
Replan = Callable[[str | None, Sequence[str] | None, CustomerFilter | None], Any]

_ORDERED = {"tiers": TIERS, "lifecycle": LIFECYCLE_STAGES}


@dataclass
class NearbyPlan:
    """A request next to the one asked that does give a plan: what was changed and the plan's figures."""

    change: str
    goal: str | None
    playbooks: list[str] | None
    filter: CustomerFilter | None
    plan: Any  # a CampaignPlan

    def as_dict(self) -> dict[str, Any]:
        p = self.plan
        return {"change": self.change, "goal": self.goal, "playbooks": self.playbooks,
                "filter": filter_spec(self.filter), "audience_size": p.audience_size, "targeted": p.targeted,
                "total_cost": p.total_cost, "expected_net_value": p.expected_net_value,
                "campaigns": [c.name for c in p.campaigns]}

    def words(self, currency: str) -> str:
        p = self.plan
        names = either([playbook_label(c.name) for c in p.campaigns], "and")
        audience = (describe_customers(filter_spec(self.filter), currency=currency) if self.filter
                    else "all customers")
        return (f"{campaign_words(self.goal, self.playbooks)} for {audience} ({self.change}): "
                f"{customers_word(p.audience_size)} in the audience, {p.targeted:,} targeted with {names} at a cost "
                f"of {currency}{p.total_cost:,.2f}, expected net value {currency}{p.expected_net_value:,.2f}")


def relaxations(flt: CustomerFilter | None) -> list[tuple[str, CustomerFilter | None]]:
    """One-step relaxations of a filter: a tier or lifecycle stage next to the ones asked added, or one
    filter dropped; each with the change in words."""
    if flt is None:
        return []
    spec = filter_spec(flt)
    out = []
    for field, value in spec.items():
        for extra in _neighbours(field, value):
            widened = [v for v in _ORDERED[field] if v in value or v == extra]
            out.append((f"{extra} added to the {'tiers' if field == 'tiers' else 'lifecycle stages'}",
                        CustomerFilter(**{**spec, field: widened})))
        rest = {k: v for k, v in spec.items() if k != field}
        label = describe_customers({field: value}).replace("customers", "").strip() or field.replace("_", " ")
        out.append((f"the filter '{label}' dropped", CustomerFilter(**rest) if rest else None))
    return out


def _neighbours(field: str, value: Any) -> list[str]:
    order = _ORDERED.get(field)
    if not order or not isinstance(value, list):
        return []
    at = sorted(order.index(v) for v in value if v in order)
    if not at:
        return []
    return [order[i] for i in (at[-1] + 1, at[0] - 1) if 0 <= i < len(order) and order[i] not in value]


def nearest_plans(step: str, flt: CustomerFilter | None, goal: str | None, playbooks: Sequence[str] | None,
                  goals: Sequence[str], replan: Replan) -> list[NearbyPlan]:
    """The nearest plan with the goal kept (one filter relaxed) and, when the audience held customers,
    the plan for the same audience under the other goal with the highest expected net value; either
    may be missing."""
    found = []
    same = [NearbyPlan(change, goal, list(playbooks) if playbooks else None, relaxed, plan)
            for change, relaxed in relaxations(flt)
            if (plan := replan(goal, playbooks, relaxed)) is not None]
    if same:
        found.append(min(same, key=lambda n: (n.plan.audience_size, -n.plan.expected_net_value)))
    if step != "audience" and (goal or playbooks):
        instead = f"'{goal}'" if goal else f"the {either([playbook_label(p) for p in playbooks])} playbook"
        other = [NearbyPlan(f"goal '{g}' instead of {instead}", g, None, flt, plan)
                 for g in goals if g != goal and (plan := replan(g, None, flt)) is not None]
        if other:
            found.append(max(other, key=lambda n: n.plan.expected_net_value))
    return found


def with_nearest(error: CampaignError, nearby: Sequence[NearbyPlan], currency: str) -> CampaignError:
    """The empty plan's error, its hint naming the nearest plans that work (or saying there is none)."""
    if nearby:
        listed = "; or ".join(n.words(currency) for n in nearby)
        hint = (f"Nothing was planned for this request. The nearest plan{'s' if len(nearby) > 1 else ''} that "
                f"work{'' if len(nearby) > 1 else 's'}: {listed}. Ask for "
                f"{'one of them' if len(nearby) > 1 else 'it'} to plan it.")
    else:
        hint = ("Nothing was planned for this request, and no single change of the filter or goal gives a plan. "
                + (error.hint or ""))
    return CampaignError(error.message, hint=hint.strip(), playbook=error.playbook, field=error.field,
                         step=error.step, nearest=[n.as_dict() for n in nearby])
