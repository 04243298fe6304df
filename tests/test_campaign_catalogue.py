"""The campaign catalogue (prompts/campaigns.yaml, predictor.campaigns.catalogue): the packaged playbooks,
where the catalogue comes from, and bad catalogues refused with the playbook, field and reason."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from predictor.campaigns.catalogue import GOAL_ALIASES, GOALS, CampaignError, goal_key, load_catalogue, parse_catalogue
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


def test_eligibility_says_who_a_playbook_is_for_not_a_churn_floor(catalogue):
    """Issue 15: calibrated churn scores of top-tier customers rarely pass 0.4, so churn floors emptied the
    win-back and VIP plans; who a playbook is for is its lifecycle stages and tiers, the value step gates."""
    rules = {p.name: p.eligibility for p in catalogue.playbooks}
    assert set(rules["win_back"].lifecycle) == {"at risk", "lapsing", "lapsed"}
    assert rules["reactivation"].lifecycle == ["lapsed"]
    assert set(rules["vip_retention"].tiers) == {"Platinum", "Gold"}
    assert {"active", "at risk", "lapsing"} <= set(rules["vip_retention"].lifecycle)
    assert "lapsed" not in rules["vip_retention"].lifecycle
    for name in ("win_back", "reactivation", "vip_retention"):
        assert rules[name].min_churn_risk is None, name


# The words marketers use for each goal (issue 15), as they would type them.
MARKETER_WORDS = {
    "win_back": ["win-back", "winback", "win back", "Win Back campaign", "re-engage", "re-engagement", "save",
                 "rescue", "comeback", "bring back"],
    "reactivate": ["reactivation", "reactivate", "wake up", "dormant"],
    "retain": ["retention", "keep", "VIP", "loyalty", "churn prevention"],
    "grow": ["cross-sell", "upsell", "second order", "welcome", "growth"],
    "upgrade": ["upgrade", "next tier"],
}


@pytest.mark.parametrize("goal", sorted(MARKETER_WORDS))
def test_marketer_words_name_their_goal(catalogue, goal):
    """Each word resolves to the goal, or to a playbook of that goal where the word is what it does
    ("cross-sell" is the cross_sell playbook, "reactivation" the reactivate goal's only playbook)."""
    names = [p.name for p in catalogue.playbooks]
    of_goal = {p.name for p in catalogue.playbooks if p.goal == goal}
    for word in MARKETER_WORDS[goal]:
        assert goal_key(word, names) in {goal} | of_goal, word


def test_goal_aliases_are_unambiguous(catalogue):
    """Every alias names a real goal or playbook and is neither a goal nor a playbook's own name, so a
    playbook name still plans that playbook and no word means two things."""
    names = [p.name for p in catalogue.playbooks]
    assert set(GOAL_ALIASES.values()) <= set(GOALS) | set(names)
    assert not set(GOAL_ALIASES) & (set(names) | set(GOALS))
    assert [goal_key(n, names) for n in names] == names
    assert {p.goal for p in catalogue.playbooks} == set(GOALS)  # every goal has a playbook
    # A custom catalogue's playbook named like an alias keeps its own name.
    assert goal_key("save", ["save"]) == "save" and goal_key("save") == "win_back"


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
    (3, "eligibility.min_churn_risk", 0.8, "eligibility.min_churn_risk", "greater than max_churn_risk"),
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
    (1, "uplift_by_lifecycle", {"churned": 0.02}, "uplift_by_lifecycle", "Valid lifecycle"),
    (1, "uplift_by_lifecycle", {"active": 0.02}, "uplift_by_lifecycle", "the eligibility's lifecycle excludes"),
    (1, "uplift_by_lifecycle", {"lapsed": 1.5}, "uplift_by_lifecycle", "above 0 and at most 1"),
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
