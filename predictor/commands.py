"""Predictor subcommands: `valuedesk evaluate`, `valuedesk score`, `valuedesk build` (predictor.build_cli) and the
model-health ones (predictor.health_commands).
Handlers get the settings the CLI entry read as `args.settings` (valuedesk.cli)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from predictor.build_cli import register_build
from predictor.engine import add_engine_arguments
from predictor.errors import ValueDeskError


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None,
                        help="Transaction file (CSV, CSV.gz or Parquet). Default: the bundled Online Retail log.")
    parser.add_argument("--schema", choices=["online_retail", "cdnow", "generic"], default=None,
                        help="Adapter for the file's columns (default: online_retail, or the settings' default).")
    parser.add_argument("--map", dest="column_map", default=None,
                        help="Column map for other files, e.g. customer_id=household_id,order_id=basket_id,"
                             "timestamp=transaction_timestamp,amount=sales_value")


def load_from_args(args, settings):
    from predictor.data.load import load_transactions, parse_column_map

    schema = args.schema or settings.default_schema
    path = args.data
    if path is None and schema == settings.default_schema and schema != "cdnow":
        path = settings.default_data
    return load_transactions(path, schema, parse_column_map(args.column_map), settings=settings)


def parse_cutoff(text: str, flag: str = "--cutoff"):
    import pandas as pd

    from predictor.errors import EvaluationWindowError

    try:
        return pd.Timestamp(text).normalize()
    except ValueError:
        raise EvaluationWindowError(f"{flag} '{text}' is not a date; expected YYYY-MM-DD, e.g. 2011-06-09") from None


def run_evaluate(args) -> int:
    from predictor.model.estimators import TrainingConfig
    from predictor.model.evaluation import evaluate, format_table
    from predictor.model.rolling import evaluate_rolling, format_rolling_table, rolling_cutoffs
    from predictor.model.scoring import history_from_transactions

    settings = args.settings
    # Bad dates and a bad horizon fail before the data is loaded.
    cutoffs = [parse_cutoff(c.strip(), "--cutoffs") for c in args.cutoffs.split(",") if c.strip()] if args.cutoffs else None
    cutoff = parse_cutoff(args.cutoff) if args.cutoff else None
    config = TrainingConfig.from_settings(settings, args.horizon_days)
    loaded = load_from_args(args, settings)
    history = history_from_transactions(loaded.transactions)
    if cutoff is not None:
        report = evaluate(history, cutoff, config.horizon_days, config, source=loaded.source)
        text = format_table(report)
    else:
        cutoffs = cutoffs or rolling_cutoffs(history, args.rolling, config.horizon_days)
        report = evaluate_rolling(history, cutoffs, config.horizon_days, config, source=loaded.source)
        text = format_rolling_table(report)
    report["data_fingerprint"] = loaded.fingerprint
    print(text)
    if args.json:
        from predictor.atomic import write_json_atomic

        write_json_atomic(Path(args.json), report)
        print(f"wrote {args.json}")
    return 0


def run_score(args) -> int:
    from predictor.engine import score_transactions, settings_with_engine
    from predictor.layout import current_name
    from predictor.model.estimators import TrainingConfig

    settings = settings_with_engine(args.settings, args)
    if args.out:
        settings = settings.model_copy(update={"data_dir": Path(args.out)})
    if current_name(settings.data_dir) is not None:
        # Writing into the serving build would change files its manifest vouches for.
        print(f"error: {settings.data_dir} serves builds (it has a `current` build); retrain with "
              "`valuedesk build --rescore`, which switches model, scores and tables together, or write a "
              "standalone model with `valuedesk score --out DIR`.", file=sys.stderr)
        return 2
    config = TrainingConfig.from_settings(settings, args.horizon_days)  # a bad horizon fails before loading
    started = time.perf_counter()
    scores = None  # the --buckets path leaves the table on disk only: it may not fit this process
    if args.buckets:
        rows, bundle = _score_bucket_set(args.buckets, settings, config)
    else:
        loaded = load_from_args(args, settings)
        if not args.quiet:
            print(loaded.report.to_table())
        scores, bundle = score_transactions(loaded.transactions, settings, config, loaded.fingerprint,
                                            engine=settings.engine)
        rows = len(scores)
    seconds = time.perf_counter() - started
    print(f"scored {rows:,} customers in {seconds:.1f} s ({rows / max(seconds, 1e-9):,.0f} customers/s; "
          f"engine {settings.engine}, model {bundle.metadata['version']}, horizon {config.horizon_days} days) "
          f"-> {settings.scores_path}")
    for warning in bundle.metadata["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if not args.quiet:
        columns = ["customer_id", "predicted_value", "churn_risk"]
        if scores is None:
            import pandas as pd

            scores = pd.read_parquet(settings.scores_path, columns=columns)
        print(scores.nlargest(5, "predicted_value")[columns].to_string(index=False))
    return 0


def _score_bucket_set(buckets: Path, settings, config):
    """`--buckets DIR`: score a log already partitioned by customer (too big to load in one process)."""
    from predictor.engine.buckets import read_bucket_set
    from predictor.engine.dask_engine import ClusterConfig, score_with_dask

    if settings.engine != "dask":
        raise ValueDeskError("--buckets scores on the Dask engine; add --engine dask (or --scheduler ADDR).")
    bucket_set = read_bucket_set(buckets)
    _, rows, bundle = score_with_dask(bucket_set, settings, config, ClusterConfig.from_settings(settings),
                                      bucket_set.fingerprint)
    return rows, bundle


def register(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser("evaluate", help="Holdout evaluation of ValueDesk against BG/NBD+GG and last-period spend.")
    add_data_arguments(evaluate)
    when = evaluate.add_mutually_exclusive_group(required=True)
    when.add_argument("--cutoff", help="Last day the models may see (YYYY-MM-DD).")
    when.add_argument("--cutoffs", help="Rolling-origin evaluation at these cutoffs (comma-separated dates): each "
                                        "split and the mean, as JSON {splits: [...], mean: {...}}.")
    when.add_argument("--rolling", type=int, metavar="N",
                      help="Rolling-origin evaluation at N cutoffs spread evenly over the data.")
    evaluate.add_argument("--horizon-days", type=int, default=None,
                          help="Days after the cutoff to predict (default: VALUEDESK_HORIZON_DAYS, 180).")
    evaluate.add_argument("--json", default=None, help="Also write the report as JSON to this path.")
    evaluate.set_defaults(handler=run_evaluate)

    score = sub.add_parser("score", help="Train on all history and score every customer into the data directory.")
    add_data_arguments(score)
    score.add_argument("--horizon-days", type=int, default=None, help="Prediction horizon (default from settings).")
    score.add_argument("--out", default=None, help="Data directory to write to (default: VALUEDESK_DATA_DIR).")
    score.add_argument("--quiet", action="store_true", help="Only print the summary line.")
    score.add_argument("--buckets", type=Path, default=None,
                       help="Score a log already partitioned into customer buckets (predictor/engine/buckets.py) "
                            "instead of --data; needs --engine dask.")
    add_engine_arguments(score)
    score.set_defaults(handler=run_score)

    from predictor.health_commands import register_health

    register_health(sub)
    register_build(sub)
