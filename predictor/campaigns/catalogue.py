"""The campaign catalogue: playbooks (who is eligible, the offer, its cost and assumed uplift), read
from ``prompts/campaigns.yaml`` or the file ``settings.campaign_catalogue`` names, and validated so every
problem names the playbook, the field and the reason.

The catalogue holds the marketing judgement; the other modules of this package hold only the
arithmetic, so every number in a plan can be traced to a catalogue field or a customer column.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from predictor.customers.audience import LIFECYCLE_STAGES, RFM_SEGMENTS, TIERS, FilterError, canonical_names
from predictor.errors import ValueDeskError
from predictor.settings import REPO_ROOT, Settings

Goal = Literal["retain", "win_back", "reactivate", "grow", "upgrade"]
GOALS: tuple[str, ...] = ("retain", "win_back", "reactivate", "grow", "upgrade")
# Words marketers use for the goals (the agent passes their phrasing through), after `goal_key`'s
# normalising (lower case, spaces and hyphens as underscores, a trailing "campaign" dropped). A word
# names one goal, or one packaged playbook where the word is what that playbook does (cross-selling is
# the cross_sell playbook; welcome_second_order grows orders but does not cross-sell). No word is a goal
# or a packaged playbook's own name ("reactivation" is the reactivation playbook, the reactivate goal's
# only one), so a playbook name still plans just that playbook; tests/test_campaign_catalogue.py checks it.
GOAL_ALIASES = {
    # Customers slipping away or already gone: at risk, lapsing, lapsed.
    **dict.fromkeys(("winback", "win", "re_engage", "reengage", "re_engagement", "reengagement", "save", "rescue",
                     "comeback", "come_back", "bring_back", "win_them_back"), "win_back"),
    # Lapsed customers only.
    **dict.fromkeys(("reactivate_lapsed", "wake_up", "wakeup", "dormant", "re_activate", "re_activation"),
                    "reactivate"),
    # Keep customers who are still buying, the top tiers first.
    **dict.fromkeys(("retention", "keep", "vip", "vips", "loyalty", "churn_prevention", "prevent_churn",
                     "anti_churn"), "retain"),
    # More orders from customers who are buying.
    **dict.fromkeys(("upsell", "up_sell", "growth", "second_order", "welcome"), "grow"),
    **dict.fromkeys(("crosssell", "cross_selling"), "cross_sell"),
    # Customers close to the next tier.
    **dict.fromkeys(("tier_upgrade", "next_tier", "upgrade_tier"), "upgrade"),
}


def goal_key(text: str, playbook_names: Sequence[str] = ()) -> str:
    """A goal as a marketer wrote it, as a goal or playbook name: a goal's or playbook's own name first,
    then GOAL_ALIASES (so a custom catalogue's playbook named like an alias keeps its name)."""
    key = re.sub(r"[\s\-]+", "_", str(text).strip().lower())
    key = re.sub(r"_?campaigns?$", "", key).strip("_")
    if key in GOALS or key in playbook_names:
        return key
    return GOAL_ALIASES.get(key, key)


# Goals whose value is keeping future value that would otherwise be lost; the others buy extra orders.
RETENTION_GOALS = frozenset({"retain", "win_back", "reactivate"})


class CampaignError(ValueDeskError):
    """A campaign request or catalogue the planner cannot act on; ``hint`` says what to do instead."""

    def __init__(self, message: str, *, hint: str | None = None, playbook: str | None = None,
                 field: str | None = None, step: str | None = None, nearest: list[dict] | None = None):
        self.message, self.hint, self.playbook, self.field = message, hint, playbook, field
        # For an empty plan: the step that emptied it ("audience", "rule", "value" or "budget") and the
        # nearest plans that do work (what was changed and their figures); the hint names them too.
        self.step, self.nearest = step, nearest or []
        super().__init__(message + (f" Hint: {hint}" if hint else ""))


class _Problem(ValueError):
    """A catalogue rule error that knows which field it is about (pydantic keeps it in ctx['error'])."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(reason)


class Eligibility(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tiers: list[str] | None = None
    lifecycle: list[str] | None = None
    segments: list[str] | None = None
    at_risk: bool | None = Field(None, description="Only customers at risk (true) or not at risk (false), by the "
                                                   "one definition (predictor.customers.tiers.flag_at_risk).")
    min_churn_risk: float | None = Field(None, ge=0, le=1)
    max_churn_risk: float | None = Field(None, ge=0, le=1)
    value_field: Literal["customer_value", "predicted_value", "value_at_risk", "revenue_12m"] = "customer_value"
    min_value: float | None = None
    max_value: float | None = None
    max_gap_to_next_tier: float | None = Field(
        None, gt=0, le=1,
        description="Only customers whose customer_value is within this share below the next tier's threshold.")

    @field_validator("tiers", "lifecycle", "segments")
    @classmethod
    def _names(cls, value, info):
        allowed = {"tiers": TIERS, "lifecycle": LIFECYCLE_STAGES, "segments": RFM_SEGMENTS}[info.field_name]
        if value is None:
            return None
        if len(value) == 0:
            raise _Problem(info.field_name, "is an empty list, which matches nobody; remove the key to allow all")
        try:
            names = canonical_names(value, allowed, info.field_name)
        except FilterError as exc:
            raise _Problem(info.field_name, str(exc)) from None
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise _Problem(info.field_name, f"lists {', '.join(dupes)} more than once")
        return names

    @model_validator(mode="after")
    def _possible(self):
        for low, high in (("min_churn_risk", "max_churn_risk"), ("min_value", "max_value")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise _Problem(low, f"{low} ({lo}) is greater than {high} ({hi}), so nobody can qualify")
        if self.max_gap_to_next_tier is not None and self.tiers == [TIERS[0]]:
            raise _Problem("max_gap_to_next_tier", f"{TIERS[0]} is the top tier and has no next tier to be near")
        if (self.value_field == "value_at_risk" and self.max_churn_risk == 0 and self.min_value is not None
                and self.min_value > 0):
            raise _Problem("min_value", "value at risk is zero when churn risk is capped at 0, so nobody can qualify")
        return self


class Offer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["discount", "free_shipping", "gift", "early_access"]
    discount_pct: float = Field(0.0, ge=0, le=90, description="Percent off the order, for type discount.")
    shipping_cost: float = Field(0.0, ge=0, description="What free shipping costs you per order.")
    gift_cost: float = Field(0.0, ge=0, description="What the gift costs you per redeeming order.")

    @model_validator(mode="after")
    def _consistent(self):
        needs = {"discount": "discount_pct", "free_shipping": "shipping_cost", "gift": "gift_cost"}
        field = needs.get(self.type)
        if field and getattr(self, field) <= 0:
            raise _Problem(field, f"offer type '{self.type}' needs a positive {field}")
        for other in set(needs.values()) - {field}:
            if getattr(self, other) > 0:
                raise _Problem(other, f"is set but the offer type is '{self.type}'; "
                                      f"it would be costed without being offered")
        return self

    def describe(self, currency: str = "") -> str:
        if self.type == "discount":
            return f"{self.discount_pct:g}% discount"
        if self.type == "free_shipping":
            return "free shipping"
        if self.type == "gift":
            return f"gift ({currency}{self.gift_cost:,.2f})"
        return "early access"


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    goal: Goal
    eligibility: Eligibility
    offer: Offer
    channel: Literal["email", "sms", "direct_mail"]
    contact_cost: float = Field(ge=0, le=1000)
    uplift: float = Field(gt=0, le=1, description="Incremental response probability caused by the campaign.")
    uplift_by_lifecycle: dict[str, float] | None = Field(
        None, description="Uplift for customers in these lifecycle stages instead of `uplift` (a playbook whose "
                          "audience spans stages that respond differently).")
    uplift_source: str = Field(min_length=10, description="Why this uplift: a measurement or a stated rationale.")
    incremental_orders: float = Field(1.0, gt=0, le=100, description="Extra orders per incremental responder (grow/upgrade).")

    @field_validator("uplift_by_lifecycle")
    @classmethod
    def _stage_uplifts(cls, value):
        if value is None:
            return None
        try:
            names = canonical_names(list(value), LIFECYCLE_STAGES, "lifecycle stages")
        except FilterError as exc:
            raise _Problem("uplift_by_lifecycle", str(exc)) from None
        for name, uplift in zip(names, value.values()):
            if not isinstance(uplift, (int, float)) or isinstance(uplift, bool) or not 0 < uplift <= 1:
                raise _Problem("uplift_by_lifecycle", f"the uplift for '{name}' must be a number above 0 and at most 1")
        return {name: float(u) for name, u in zip(names, value.values())}

    @model_validator(mode="after")
    def _stages_eligible(self):
        stages = self.eligibility.lifecycle
        outside = sorted(set(self.uplift_by_lifecycle or {}) - set(stages or LIFECYCLE_STAGES))
        if outside:
            raise _Problem("uplift_by_lifecycle", f"names {', '.join(outside)}, which the eligibility's lifecycle "
                                                  "excludes, so the figure could never apply")
        return self

    def uplift_for(self, lifecycle: Any = None) -> Any:
        """The assumed uplift per customer: the stage's figure where `uplift_by_lifecycle` names the
        customer's lifecycle stage, else `uplift` (a float when no stages are given or none differ).
        A categorical `lifecycle` (the planning frame's) is read by its codes: one lookup per stage, not
        per customer, which on a million customers is most of the cost."""
        if not self.uplift_by_lifecycle or lifecycle is None:
            return self.uplift
        stages = lifecycle if isinstance(lifecycle, pd.Categorical) else pd.Categorical(
            pd.Series(lifecycle, dtype="object").astype(str))
        return self.uplift_by_code(stages.categories)[stages.codes]

    def uplift_by_code(self, stages: Any) -> np.ndarray:
        """The uplift per code of a categorical lifecycle with categories `stages`, plus a last entry (the
        playbook's uplift) that a missing stage's code -1 picks."""
        return np.array([self.stage_uplift(c) for c in stages] + [self.uplift], dtype=float)

    def stage_uplift(self, stage: Any) -> float:
        """The assumed uplift of one customer in lifecycle `stage`."""
        return (self.uplift_by_lifecycle or {}).get(str(stage), self.uplift)

    def uplift_text(self) -> str:
        """The uplift as plans state it, with any per-stage figures."""
        text = f"{self.uplift:.1%}"
        if self.uplift_by_lifecycle:
            text += " (" + ", ".join(f"{u:.1%} for {s} customers" for s, u in self.uplift_by_lifecycle.items()) + ")"
        return text


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offer_window_days: int = Field(30, ge=1, le=365)
    playbooks: list[Playbook]
    source: str = ""

    def get(self, name: str) -> Playbook:
        for p in self.playbooks:
            if p.name == name:
                return p
        raise CampaignError(f"No playbook named '{name}' in the catalogue.",
                            hint=closest_hint(name, [p.name for p in self.playbooks], "playbooks"))


def closest_hint(value: str, valid: Sequence[str], what: str) -> str:
    """'did you mean ...?' for a mistyped name, then every valid name."""
    close = difflib.get_close_matches(str(value), list(valid), n=1, cutoff=0.5)
    return (f"did you mean '{close[0]}'? " if close else "") + f"Valid {what}: {', '.join(valid)}."


def default_catalogue_path(settings: Settings | None = None) -> Path:
    """The file ``settings.campaign_catalogue`` names, else (also without settings) the packaged one."""
    if settings is not None and settings.campaign_catalogue is not None:
        return Path(settings.campaign_catalogue)
    return Path(str(resources.files("prompts").joinpath("campaigns.yaml")))


def shown_path(path: str | Path, settings: Settings | None = None) -> str:
    """How messages name a file: relative to the data directory or the repository when inside one,
    else by its name alone, so no error or tool result carries an absolute server path."""
    path = Path(path)
    bases = ([Path(settings.data_dir)] if settings is not None else []) + [REPO_ROOT]
    for base in bases:
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except (ValueError, OSError):
            continue
    return path.name


def load_catalogue(path: str | Path | Settings | None = None, *, settings: Settings | None = None) -> Catalogue:
    """Read and validate a catalogue; any problem names the playbook, the field and the reason.

    Without a path, the file the settings name (see `default_catalogue_path`); ``load_catalogue(settings)``
    is accepted too (the tools layer passes its settings object). Messages name the file with
    `shown_path`; ``Catalogue.source`` keeps the full path.
    """
    if isinstance(path, Settings):
        path, settings = None, path
    path = Path(path) if path is not None else default_catalogue_path(settings)
    label = shown_path(path, settings)
    fix = f"edit {label} (the comments at its top explain every field)"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CampaignError(f"Cannot read the campaign catalogue {label}: {exc.strerror or type(exc).__name__}.",
                            hint="set VALUEDESK_CAMPAIGN_CATALOGUE to an existing YAML file, or unset it "
                                 "to use the packaged catalogue.") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CampaignError(f"Campaign catalogue {label} is not valid YAML: {exc}", hint=fix) from None
    return parse_catalogue(raw, source=str(path), shown=label)


def parse_catalogue(raw: Any, *, source: str = "<catalogue>", shown: str | None = None) -> Catalogue:
    """A validated catalogue from parsed YAML; ``shown`` names it in messages (default ``source``)."""
    catalogue_source, source = source, shown or source
    fix = f"edit {source}"
    if not isinstance(raw, Mapping) or not isinstance(raw.get("playbooks"), list) or not raw["playbooks"]:
        raise CampaignError(f"Campaign catalogue {source} needs a non-empty 'playbooks:' list at the top level.",
                            hint=fix, field="playbooks")
    unknown = set(raw) - {"offer_window_days", "playbooks"}
    if unknown:
        raise CampaignError(f"Campaign catalogue {source} has unknown top-level keys {sorted(unknown)}.",
                            hint="allowed: offer_window_days, playbooks", field=sorted(unknown)[0])
    playbooks = [_parse_playbook(entry, i, source) for i, entry in enumerate(raw["playbooks"], start=1)]
    _check_distinct(playbooks, source)
    try:
        window = int(raw.get("offer_window_days", 30))
        return Catalogue(offer_window_days=window, playbooks=playbooks, source=catalogue_source)
    except (ValidationError, TypeError, ValueError) as exc:
        raise CampaignError(f"Campaign catalogue {source}: field 'offer_window_days': must be a whole number "
                            f"of days from 1 to 365 ({exc.__class__.__name__}).", hint=fix,
                            field="offer_window_days") from None


def _parse_playbook(entry: Any, position: int, source: str) -> Playbook:
    """One validated playbook; an error names it (or its position) and the exact field."""
    fix = f"edit {source}"
    name = entry.get("name") if isinstance(entry, Mapping) else None
    label = str(name) if name else f"#{position}"
    if not isinstance(entry, Mapping):
        raise CampaignError(f"Campaign catalogue {source}: playbook {label} is not a mapping of fields.",
                            hint=fix, playbook=label)
    try:
        return Playbook.model_validate(entry)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        problem = (err.get("ctx") or {}).get("error")
        if isinstance(problem, _Problem):
            # Model-level checks report the playbook section; name the exact field instead.
            loc = [p for p in loc if p not in (problem.field,)] + [problem.field]
            reason = problem.reason
        else:
            reason = err["msg"]
        field = ".".join(loc) or "(playbook)"
        raise CampaignError(f"Campaign catalogue {source}: playbook '{label}', field '{field}': {reason}.",
                            hint=fix, playbook=label, field=field) from None


def _check_distinct(playbooks: Sequence[Playbook], source: str) -> None:
    """Unique names, and no two playbooks with the same goal and eligibility (one could never win)."""
    seen: dict[str, Playbook] = {}
    for p in playbooks:
        if p.name in seen:
            raise CampaignError(f"Campaign catalogue {source}: playbook '{p.name}' is defined twice.",
                                hint="give each playbook a unique name", playbook=p.name, field="name")
        for other in seen.values():
            if other.goal == p.goal and other.eligibility == p.eligibility:
                raise CampaignError(
                    f"Campaign catalogue {source}: playbooks '{other.name}' and '{p.name}' overlap completely "
                    f"(same goal '{p.goal}' and the same eligibility), so one of them can never be chosen on merit.",
                    hint="narrow one playbook's eligibility or merge them", playbook=p.name, field="eligibility")
        seen[p.name] = p
