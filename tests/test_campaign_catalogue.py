"""The campaign catalogue (prompts/campaigns.yaml, predictor.campaigns.catalogue): the packaged playbooks,
where the catalogue comes from, and bad catalogues refused with the playbook, field and reason."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from predictor.campaigns.catalogue import CampaignError, load_catalogue, parse_catalogue
from predictor.settings import Settings

REQUIRED_PLAYBOOKS = {"vip_retention": "retain", "win_back": "win_back", "reactivation": "reactivate",
                      "cross_sell": "grow", "welcome_second_order": "grow", "loyalty_upgrade": "upgrade"}


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture()
def raw_catalogue(catalogue) -> dict:
    return yaml.safe_load(Path(catalogue.source).read_text())


def test_packaged_catalogue_has_the_playbooks(catalogue):
    goals = {p.name: p.goal for p in catalogue.playbooks}
    assert {k: goals.get(k) for k in REQUIRED_PLAYBOOKS} == REQUIRED_PLAYBOOKS
    assert all(len(p.uplift_source) > 20 for p in catalogue.playbooks)


def test_catalogue_path_comes_from_settings(tmp_path, raw_catalogue):
    raw_catalogue["playbooks"] = raw_catalogue["playbooks"][:2]
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw_catalogue))
    cat = load_catalogue(settings=Settings(campaign_catalogue=path))
    assert [p.name for p in cat.playbooks] == ["vip_retention", "win_back"]
    assert load_catalogue(Settings(campaign_catalogue=path)).source == str(path)


def test_catalogue_without_settings_is_the_packaged_one(tmp_path, monkeypatch, catalogue):
    """predictor.campaigns reads no process-wide settings: the environment counts only through the
    settings object a caller passes."""
    monkeypatch.setenv("VALUEDESK_CAMPAIGN_CATALOGUE", str(tmp_path / "missing.yaml"))
    assert load_catalogue().source == catalogue.source
    with pytest.raises(CampaignError, match="Cannot read the campaign catalogue"):
        load_catalogue(Settings())


def _edit(raw: dict, index: int, dotted: str, value) -> dict:
    raw = copy.deepcopy(raw)
    node = raw["playbooks"][index]
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return raw


_DELETE = object()


@pytest.mark.parametrize("index,dotted,value,field,reason", [
    (1, "eligibility.tiers", ["Platinum", "Goldd"], "eligibility.tiers", "Did you mean 'Gold'"),
    (1, "eligibility.lifecycle", ["churned"], "eligibility.lifecycle", "Valid lifecycle"),
    (3, "eligibility.segments", ["Champs"], "eligibility.segments", "Champions"),
    (1, "eligibility.tiers", [], "eligibility.tiers", "empty list"),
    (1, "eligibility.tiers", ["Gold", "gold"], "eligibility.tiers", "more than once"),
    (1, "eligibility.max_churn_risk", 0.2, "eligibility.min_churn_risk", "greater than max_churn_risk"),
    (1, "eligibility.min_churn_risk", 1.5, "eligibility.min_churn_risk", "less than or equal to 1"),
    (5, "eligibility.tiers", ["Platinum"], "eligibility.max_gap_to_next_tier", "no next tier"),
    (1, "offer.discount_pct", 0, "offer.discount_pct", "needs a positive discount_pct"),
    (0, "offer.gift_cost", 5, "offer.gift_cost", "is set but the offer type is 'early_access'"),
    (1, "offer.type", "coupon", "offer.type", "discount"),
    (1, "channel", "pigeon", "channel", "email"),
    (1, "goal", "world_domination", "goal", "retain"),
    (1, "uplift", 1.5, "uplift", "less than or equal to 1"),
    (1, "uplift", 0, "uplift", "greater than 0"),
    (1, "contact_cost", -1, "contact_cost", "greater than or equal to 0"),
    (1, "uplift_source", _DELETE, "uplift_source", "Field required"),
    (1, "budget_line", 3, "budget_line", "Extra inputs"),
])
def test_bad_catalogue_names_playbook_field_and_reason(raw_catalogue, index, dotted, value, field, reason):
    bad = _edit(raw_catalogue, index, dotted, value)
    name = bad["playbooks"][index]["name"]
    with pytest.raises(CampaignError) as info:
        parse_catalogue(bad, source="test.yaml")
    err = info.value
    assert (err.playbook, err.field) == (name, field)
    assert f"playbook '{name}'" in str(err) and field in str(err) and reason in str(err)


def test_duplicate_and_overlapping_playbooks_are_refused(raw_catalogue):
    dup = copy.deepcopy(raw_catalogue)
    dup["playbooks"].append(copy.deepcopy(dup["playbooks"][0]))
    with pytest.raises(CampaignError, match="'vip_retention' is defined twice"):
        parse_catalogue(dup)
    twin = copy.deepcopy(raw_catalogue["playbooks"][1])
    twin["name"] = "win_back_sms"
    twin["channel"] = "sms"
    overlap = copy.deepcopy(raw_catalogue)
    overlap["playbooks"].append(twin)
    with pytest.raises(CampaignError, match="'win_back' and 'win_back_sms' overlap completely") as info:
        parse_catalogue(overlap)
    assert info.value.field == "eligibility"


def test_unreadable_catalogues(tmp_path):
    with pytest.raises(CampaignError, match="Cannot read the campaign catalogue"):
        load_catalogue(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("playbooks: [\n  - name: x\n")
    with pytest.raises(CampaignError, match="not valid YAML"):
        load_catalogue(broken)
    broken.write_text("campaigns: []\n")
    with pytest.raises(CampaignError, match="'playbooks:' list"):
        load_catalogue(broken)
