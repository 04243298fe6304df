"""Model-health subcommands: `valuedesk health`, `valuedesk retrain [--if-needed]`, `valuedesk model list|use`
(the state they read and write: predictor/model_health.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from predictor.atomic import write_json_atomic
from predictor.commands import add_data_arguments, parse_cutoff
from predictor.errors import ValueDeskError
from predictor.model_health import compute_health, model_versions, retrain


def run_health(args) -> int:
    """`valuedesk health`: the serving build's model checked against its data (predictor/model/health.py)."""
    from predictor.layout import current_version

    as_of = parse_cutoff(args.as_of, "--as-of") if args.as_of else None
    report = compute_health(args.settings, current_version(args.settings.data_dir), as_of)
    print(format_health(report))
    if args.json:
        write_json_atomic(Path(args.json), report)
        print(f"wrote {args.json}")
    return 0


def format_health(report: dict) -> str:
    """The health report in a few lines a marketer reads."""
    model, data, closed, shift = report["model"], report["sufficiency"], report["backtest"], report["drift"]
    age = (f"{model['age_days']} days before {report['as_of']}" if model["age_days"] >= 0
           else f"after the as-of date {report['as_of']}")
    lines = [f"Model {model['version']}, trained on data to {model['trained_through']} ({age}), "
             f"{model['horizon_days']}-day forecasts.",
             f"Data: {data['customers_with_orders']:,} customers with orders, {data['history_days']} days of history, "
             f"{data['repeat_buyer_share']:.0%} repeat buyers: {data['status']}."]
    lines += [f"  {p['level']}: {p['reason']}" for p in data["problems"]]
    if closed.get("available"):
        lines.append(f"Last closed window ({closed['window']['start']} to {closed['window']['end']}): quality "
                     f"{closed['band']} ({closed['quality']:.0%}), churn AUC {closed['churn_auc']:.3f}, total "
                     f"{closed['total_error']:+.1%}, P10-P90 coverage {closed['interval_coverage_p10_p90']:.0%}.")
        lines.append(f"  ({closed['scale']})")
    else:
        lines.append(f"Last closed window: {closed['reason']}")
    estimated = report.get("estimated") or {}
    if estimated.get("available"):
        lines.append(f"Estimated for the window in progress ({estimated['window']['start']} to "
                     f"{estimated['window']['end']}, outcomes not in yet): spend MAE {estimated['mae']:,.2f} "
                     f"(DLE), churn AUC {estimated['churn_auc']:.3f} (CBPE).")
    lines.append(f"Drift since {shift['reference']['cutoff']}: {shift['drifted_features']} of "
                 f"{shift['tested_features']} features drifted" + (f" ({', '.join(shift['drifted'])})" if shift["drifted"]
                                                                   else "") + ".")
    lines.append(report["recommendation"]["summary"])
    if report.get("last_retrain"):
        lines.append(f"Last retrain attempt ({report['last_retrain']['compared_at']}): "
                     + ("promoted" if report["last_retrain"]["promoted"] else "not promoted")
                     + f", {report['last_retrain']['reason']}.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- retrain

def retrain_data_args(args, version) -> dict:
    """The latest data: the arguments given, else the source the serving build was built from."""
    from predictor.build_state import read_build_info
    from predictor.data.load import parse_column_map

    if args.data is not None or args.schema is not None:
        schema = args.schema or args.settings.default_schema
        source = args.data if args.data is not None else (
            args.settings.default_data if schema == args.settings.default_schema and schema != "cdnow" else None)
        return {"source": source, "schema": schema, "column_map": parse_column_map(args.column_map)}
    key = read_build_info(version).get("input_key")
    if not key:
        raise ValueDeskError("The serving build has no record of its data; pass --data (and --schema/--map).")
    return {"source": key["source"], "schema": key["schema"], "column_map": key.get("column_map") or {}}


def run_retrain(args) -> int:
    """`valuedesk retrain`: challenger against champion on the last closed window; promote when not worse."""
    from predictor.layout import current_version

    settings = args.settings
    data_args = retrain_data_args(args, current_version(settings.data_dir))
    outcome = retrain(settings, data_args, if_needed=args.if_needed, with_index=not args.no_index)
    if outcome["record"]:
        print(format_comparison(outcome["record"]))
    print(outcome["summary"])
    return 1 if outcome["status"] == "no_window" else 0


def format_comparison(record: dict) -> str:
    champ, chall = record["champion"], record["challenger"]
    lines = [f"Last closed window {record['window']['start']} to {record['window']['end']} "
             f"({record['customers']:,} customers):",
             f"  current model {champ['version']}: churn AUC {champ['churn_auc']:.4f}, spend MAE {champ['mae']:,.2f}",
             f"  challenger (data to {chall['trained_through']}): churn AUC {chall['churn_auc']:.4f}, "
             f"spend MAE {chall['mae']:,.2f}",
             ("Promote: " if record["promoted"] else "Keep the current model: ") + record["reason"] + "."]
    if record["champion_saw_window"]:
        lines.append(f"  (the current model's data ran past the window's start: compared as {record['champion_basis']})")
    return "\n".join(lines)


# --------------------------------------------------------------------------- model versions

def run_model(args) -> int:
    rows = model_versions(args.settings)
    if args.model_command == "list":
        if not rows:
            print("No model versions yet; run `valuedesk build`.")
        for row in rows:
            promoted = " (promoted by retrain)" if row["promotion"] else ""
            print(f"{'*' if row['serving'] else ' '} {row['model_version']}  build {row['build_version']}  "
                  f"data to {row['data_end']}{promoted}")
        return 0
    return use_version(args.settings, args.version, rows)


def use_version(settings, wanted: str, rows: list[dict]) -> int:
    """Switch serving to the kept version whose model or build version is `wanted` (one pointer move)."""
    from predictor.build_index import activate_index
    from predictor.build_state import build_lock
    from predictor.layout import BUILDS_DIR, CURRENT, BuildVersion
    from predictor.atomic import fsync_dir, replace_symlink

    match = [r for r in rows if wanted in (r["model_version"], r["build_version"])]
    if not match:
        kept = ", ".join(r["model_version"] or r["build_version"] for r in rows) or "none"
        raise ValueDeskError(f"No kept model version '{wanted}'; kept versions: {kept} (`valuedesk model list`).")
    name = match[0]["build_version"]
    data_dir = Path(settings.data_dir)
    version = BuildVersion(data_dir=data_dir, root=data_dir / BUILDS_DIR / name, name=name)
    with build_lock(data_dir):
        broken = version.verify_all()
        if broken:
            raise ValueDeskError(f"Version {name} is damaged ({broken[0]}); it cannot serve.")
        replace_symlink(data_dir / CURRENT, Path(BUILDS_DIR) / name)
        fsync_dir(data_dir)
    try:
        activate_index(settings, version)
    except (ValueDeskError, OSError) as exc:
        print(f"warning: the profile index alias did not follow ({exc}); run `valuedesk build` to re-index.")
    print(f"Serving model {match[0]['model_version']} (build {name}).")
    return 0


def run_check_data(args) -> int:
    """`valuedesk check-data`: the data minimums and what the log lacks, before any training."""
    from predictor.commands import load_from_args
    from predictor.model.data_check import check_data, format_check
    from predictor.model.health import HealthThresholds
    from predictor.model.scoring import history_from_transactions

    settings = args.settings
    loaded = load_from_args(args, settings)
    horizon = args.horizon_days or settings.horizon_days
    report = check_data(loaded.transactions, history_from_transactions(loaded.transactions), horizon,
                        HealthThresholds.from_settings(settings))
    print(format_check(report))
    if args.json:
        write_json_atomic(Path(args.json), report)
    return 3 if report["status"] == "refuse" else 0


def register_health(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser("check-data", help="Can this log support the predictions? Customers, history, repeat "
                                              "buyers, products, cancellations and gaps against the minimums; "
                                              "exit 3 below them. Run at the start of every build too.")
    add_data_arguments(check)
    check.add_argument("--horizon-days", type=int, default=None, help="Forecast horizon (default from settings).")
    check.add_argument("--json", default=None, help="Also write the report here.")
    check.set_defaults(handler=run_check_data)

    health = sub.add_parser("health", help="Is the model in use still good? Backtest, estimates, drift, data "
                                           "minimums, retrain advice.")
    health.add_argument("--as-of", default=None, help="Judge the model as of this date (default: the data's last day).")
    health.add_argument("--json", default=None, help="Also write the full report here.")
    health.set_defaults(handler=run_health)

    retrain = sub.add_parser("retrain", help="Train a challenger on the latest data; promote it only when it is not "
                                             "worse than the current model on the last closed window.")
    add_data_arguments(retrain)
    retrain.add_argument("--if-needed", action="store_true",
                         help="Only when the health report says a retrain is due (age, drift or performance).")
    retrain.add_argument("--no-index", action="store_true", help="Promote without re-indexing the profiles "
                                                                  "(as `valuedesk build --no-index`).")
    retrain.set_defaults(handler=run_retrain)

    model = sub.add_parser("model", help="Model versions: list them, or roll back with `use VERSION`.")
    actions = model.add_subparsers(dest="model_command", required=True)
    actions.add_parser("list", help="Kept model versions, the serving one starred.")
    use = actions.add_parser("use", help="Serve a kept version again (model, scores, tables and index together).")
    use.add_argument("version", help="A model version or build version from `valuedesk model list`.")
    model.set_defaults(handler=run_model)
