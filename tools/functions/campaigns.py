"""The campaign tools: recommend_campaigns (a ranked, optionally budgeted plan for an audience) and
export_audience (an audience or a plan's targets written to a CSV file under the data directory)."""

from __future__ import annotations

import csv
import itertools
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from predictor.campaigns.export import AUDIENCE_COLUMNS
from predictor.customers.contacts import CONTACT_FIELDS, read_contacts
from tools.audit import audit_retention
from tools.deps import ToolDeps, ToolFailure
from tools.functions.filters import customer_filter
from tools.models import (
    CampaignArgs, CampaignPlanItem, ExportAudienceArgs, ExportAudienceResult, RecommendCampaignsResult,
)

log = logging.getLogger(__name__)

MAX_IDS_PER_CAMPAIGN = 200


def campaign_label(playbook: Any) -> str:
    """A playbook id as a campaign's name reads (the `label` of each planned campaign): the answers' words
    (predictor.campaigns.wording.playbook_label), capitalised: win_back -> "Win-back", vip_retention ->
    "VIP retention", welcome_second_order -> "Welcome second order"."""
    from predictor.campaigns.wording import playbook_label

    words = " ".join("VIP" if w.lower() == "vip" else w for w in playbook_label(str(playbook or "")).split())
    return words[:1].upper() + words[1:]


def _plan(args: CampaignArgs, deps: ToolDeps, list_ids: int | None = None) -> Any:
    from predictor.campaigns.planning import plan_campaigns

    return plan_campaigns(deps.planning_customers, goal=args.goal, budget=args.budget,
                          filter=customer_filter(args, deps), catalogue=deps.catalogue, settings=deps.settings,
                          list_ids=list_ids,
                          floors=deps.customers.tier_floors())


def recommend_campaigns(args: CampaignArgs, deps: ToolDeps) -> RecommendCampaignsResult:
    """Recommend campaigns for an audience (the same filters as find_customers), an optional goal
    ('retain' for VIPs, 'win_back' for customers at risk or lapsed, 'reactivate' for lapsed, 'grow',
    'upgrade') and an optional budget. Returns ranked campaigns with audience size, customer ids, offer,
    cost, expected incremental revenue, net value, ROI and assumptions; with a budget, nobody gets two
    campaigns. Use export_audience for the full audience as a CSV file.
    """
    # The docstring is the LLM's tool description (kept short: the CPU test model has an 8k window).
    # A playbook name as the goal plans just that playbook; the notes say why budget stays unspent; an
    # empty plan fails with campaign_error whose message names the step that emptied it and whose hint
    # names the nearest plans that work (never returned in place of the one asked).
    # Per-customer lists can hold a million ids: plan with only the first few listed (the export plans in full).
    full = _plan(args, deps, list_ids=MAX_IDS_PER_CAMPAIGN)
    plan = full.model_dump(mode="json", exclude={"campaigns": {"__all__": {
        "customer_ids", "expected_values", "control_group_ids", "control_group_size", "ids_complete"}}})
    campaigns = []
    for item, result in zip(plan.pop("campaigns", []), full.campaigns):
        item["customer_ids"] = result.customer_ids
        item["customer_ids_truncated"] = result.audience_size > len(result.customer_ids)
        item["control_group_size"] = result.control_group_size
        item["label"] = campaign_label(item["name"])
        campaigns.append(CampaignPlanItem.model_validate(item))
    plan["currency"] = deps.settings.currency_symbol
    return RecommendCampaignsResult.model_validate({**plan, "campaigns": campaigns})


def _preview(path: Path, n: int = 5) -> tuple[list[str], list[dict[str, Any]]]:
    """The file's columns and first rows, without contact data: a result reaches the agent and its LLM."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = [{k: v for k, v in row.items() if k not in CONTACT_FIELDS} for row in itertools.islice(reader, n)]
        return list(reader.fieldnames or []), rows


def _with_contacts(rows: Iterable[dict[str, Any]], deps: ToolDeps) -> tuple[Iterator[dict[str, Any]], list[str]]:
    """The audience rows with each customer's contact fields (empty where the customers file has none)."""
    contacts = read_contacts(deps.settings.data_dir)
    if contacts is None:
        raise ToolFailure("campaign_error", "No customers file with contact data has been imported.",
                          "Import one with `valuedesk build --customers PATH --customers-map customer_id=...,email=...`.")
    fields = [f for f in CONTACT_FIELDS if f in contacts.columns]
    lookup = contacts[fields].to_dict("index")

    def joined():
        for row in rows:
            yield {**row, **lookup.get(str(row.get("customer_id")), {})}

    return joined(), [*AUDIENCE_COLUMNS, *fields]


def _counting_groups(rows: Iterable[dict[str, Any]], groups: Counter[str]) -> Iterator[dict[str, Any]]:
    """The rows as they are, counting each `group` (treatment / control) as the file is written."""
    for row in rows:
        groups[row.get("group")] += 1
        yield row


def _data_file(path: Path, deps: ToolDeps) -> str:
    """A file as results and messages name it: relative to the data directory (no absolute server path);
    an export in a separate exports folder (settings.exports_dir) reads 'exports/<name>' all the same."""
    try:
        return path.relative_to(deps.settings.data_dir).as_posix()
    except ValueError:
        return f"exports/{path.name}" if path.parent == deps.settings.exports_path else path.name


def _export_source(args: ExportAudienceArgs, deps: ToolDeps) -> tuple[Any, int, str]:
    """The rows to export, how many there will be and the file-name slug: everyone passing the filter
    (one `treatment` group), or a plan's treated customers and control groups (`control`)."""
    from predictor.campaigns.export import audience_row_count, audience_rows, audience_slug

    source = args.source or ("campaigns" if (args.goal or args.budget is not None or args.campaign) else "filter")
    flt = customer_filter(args, deps, empty=", so nothing was exported")
    store = deps.customers
    words = flt.model_dump(exclude_none=True)
    if source == "campaigns":
        plan = _plan(args, deps)
        rows = audience_rows(plan, store.frame, campaign=args.campaign)
        # Named for what was planned: the one campaign, else the goal (canonical) or the playbook asked for.
        slug = audience_slug(words, plan=args.campaign or plan.goal or args.goal or "campaign")
        return rows, audience_row_count(plan, campaign=args.campaign), slug
    idx, total = store.top(flt, args.sort_by or "value_at_risk", args.max_rows)
    if total == 0:
        raise ToolFailure("not_found", "No customer passes this filter, so there is nothing to export.",
                          "Check the filter with find_customers or segment_summary.")
    return audience_rows(store.take(idx)), len(idx), audience_slug(words)


def export_audience(args: ExportAudienceArgs, deps: ToolDeps) -> ExportAudienceResult:
    """Write an audience to a CSV file a marketing tool can import (id, group, campaign, offer, products,
    tier, churn risk, values, next order date) under the exports folder (data_dir/exports), and return its
    file name, row count, a preview and when it expires. The file name is always chosen here.
    The audience is either everyone passing the filter (source 'filter', the default) or a campaign
    plan for the same filter, goal and budget: its targets plus control customers flagged 'control',
    not to be contacted (source 'campaigns', the default when a goal or budget is given). Nothing is
    sent anywhere.
    """
    from predictor.campaigns.export import export_dir, export_file_name, prune_exports, write_new_export

    rows, count, slug = _export_source(args, deps)
    if args.max_rows:
        rows, count = itertools.islice(rows, args.max_rows), min(count, args.max_rows)
    groups: Counter[str] = Counter()
    rows = _counting_groups(rows, groups)
    if count == 0:
        raise ToolFailure("campaign_error", "The campaign plan targets nobody, so there is nothing to export.",
                          "Widen the filter, raise the budget or drop the campaign name.")
    columns = AUDIENCE_COLUMNS
    if args.include_contact:
        rows, columns = _with_contacts(rows, deps)
    max_age_h = deps.settings.export_max_age_hours
    folder = deps.settings.exports_path
    path = folder / export_file_name(slug, count)
    try:
        removed = prune_exports(export_dir(folder), max_age_h)
        if removed:
            log.info("removed %d expired export file(s) from exports/", len(removed))
            audit_retention(deps.settings.audit_path, "exports", {"files": len(removed), "max_age_hours": max_age_h})
        # A name an earlier export holds gets a -v2, -v3 ... suffix: an export never overwrites another.
        path, n = write_new_export(rows, path, columns)
    except OSError as exc:
        # Named relative to the data directory; the registry still maps a full or read-only disk
        # (the cause) to its storage error code.
        raise ToolFailure("internal_error", f"Could not write {_data_file(path, deps)}: "
                          f"{exc.strerror or type(exc).__name__}.",
                          "Check that the exports folder (VALUEDESK_EXPORTS_DIR, default data_dir/exports) is "
                          "writable and has space.") from exc
    columns, preview = _preview(path)
    expires = datetime.fromtimestamp(path.stat().st_mtime + max_age_h * 3600, tz=timezone.utc)
    return ExportAudienceResult(path=str(path), file=_data_file(path, deps),
                                expires_at=expires.isoformat(timespec="seconds"), rows=n,
                                control_rows=groups["control"], columns=columns, preview=preview)
