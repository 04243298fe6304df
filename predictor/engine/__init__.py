"""Where training and scoring run: `local` (this process, the default) or `dask` (a Dask cluster).

One switch (`--engine`, `VALUEDESK_ENGINE`) and one entry point, `score_transactions`, for `valuedesk score`
and the build's score step. Both engines call the same per-customer functions; the Dask engine adds the
partitioning (predictor/engine/buckets.py) and the reduce steps (predictor/engine/dask_engine.py)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

ENGINES = ("local", "dask")


def add_engine_arguments(parser) -> None:
    """`--engine` and `--scheduler`, for `valuedesk build` and `valuedesk score`."""
    parser.add_argument("--engine", choices=ENGINES, default=None,
                        help="where training and scoring run: local (this process) or dask (default: VALUEDESK_ENGINE, local)")
    parser.add_argument("--scheduler", metavar="ADDR", default=None,
                        help="the Dask scheduler, e.g. tcp://HOST:8786 (default: VALUEDESK_DASK_SCHEDULER; "
                             "none: a LocalCluster sized to this machine)")


def settings_with_engine(settings, args):
    """The settings with the command line's engine choice applied (the flags win over the environment)."""
    update = {key: value for key, value in (("engine", args.engine), ("dask_scheduler", args.scheduler))
              if value is not None}
    if update.get("dask_scheduler") and "engine" not in update:
        update["engine"] = "dask"  # a scheduler address means the Dask engine
    return settings.model_copy(update=update) if update else settings


def score_transactions(transactions, settings, config, data_fingerprint: str = "", *,
                       engine: str = "local", cluster=None, buckets_dir: Path | None = None,
                       promotion: dict | None = None):
    """Train on all history and score every customer into `settings`' data dir; returns (scores, bundle).

    The Dask engine first partitions the categorised log into customer buckets at `buckets_dir` (reused
    when they hold this very log), then scores them on `cluster` (predictor.engine.dask_engine.ClusterConfig)."""
    from predictor.model.scoring import score_customers

    if engine == "local":
        return score_customers(transactions, settings, config, data_fingerprint, promotion=promotion)
    if engine != "dask":
        raise ValueError(f"Unknown engine '{engine}'; expected one of {', '.join(ENGINES)}.")
    import pandas as pd

    from predictor.engine.dask_engine import ClusterConfig, score_with_dask

    bucket_set = customer_buckets(transactions, settings, data_fingerprint, buckets_dir)
    path, _, bundle = score_with_dask(bucket_set, settings, config, cluster or ClusterConfig.from_settings(settings),
                                      data_fingerprint, promotion=promotion)
    # The whole table, as the local engine returns it (the build's reduce steps read it; see customer_tables).
    return pd.read_parquet(path), bundle


def customer_buckets(transactions, settings, data_fingerprint: str = "", buckets_dir: Path | None = None):
    """The categorised log partitioned into customer buckets at `buckets_dir` (default <data dir>/buckets),
    reused when they hold this very log cleaned the same way."""
    from predictor.data.cleaning import CLEANING_VERSION
    from predictor.engine.buckets import read_bucket_set, write_buckets
    from predictor.errors import DataError
    from predictor.model.scoring import with_categories

    root = Path(buckets_dir or Path(settings.data_dir) / "buckets")
    # Buckets hold the cleaned, categorised lines: reusable only for the same log cleaned the same way.
    key = f"{data_fingerprint}:{CLEANING_VERSION}:{settings.outlier_robust_z}" if data_fingerprint else ""
    try:
        bucket_set = read_bucket_set(root)
    except DataError:
        bucket_set = None
    if bucket_set is None or not key or bucket_set.fingerprint != key:
        bucket_set = write_buckets(with_categories(transactions), root, fingerprint=key)
    return bucket_set


def customer_tables(scores, transactions, rules, settings, data_fingerprint: str = "", with_suggestions: bool = True):
    """On the Dask engine, the customers and profiles tables made per bucket on the cluster
    (predictor/engine/dask_customers.py), in the order of `scores`."""
    from predictor.engine.dask_customers import customer_tables_with_dask
    from predictor.engine.dask_engine import ClusterConfig, dask_client

    bucket_set = customer_buckets(transactions, settings, data_fingerprint)
    with dask_client(ClusterConfig.from_settings(settings)) as client:
        return customer_tables_with_dask(scores, bucket_set, rules, client, Path(settings.data_dir), with_suggestions)


def build_session(settings):
    """The context a build runs its steps in: on the Dask engine, one cluster client for all of them."""
    if settings.engine != "dask":
        return nullcontext()
    from predictor.engine.dask_engine import ClusterConfig, shared_client

    return shared_client(ClusterConfig.from_settings(settings))


def collection_writer(settings):
    """On the Dask engine with a Chroma server, the build's collection write as parallel upserts from the
    workers (predictor/engine/dask_index.py); None otherwise (the index writes from this process)."""
    if settings.engine != "dask" or not settings.chroma_url:
        return None

    def write(collection: str, profiles, vectors) -> None:
        from predictor.engine.dask_engine import ClusterConfig, dask_client
        from predictor.engine.dask_index import ingest_profiles

        with dask_client(ClusterConfig.from_settings(settings)) as client:
            ingest_profiles(profiles, vectors, settings.chroma_url, collection, client, Path(settings.data_dir),
                            timeout_s=max(settings.chroma_timeout_s, 60.0))
    return write


def prefill_embeddings(profiles, settings) -> str | None:
    """On the Dask engine, embed the profiles the embedding cache lacks on the workers before the build's
    index step, which then reads every vector from the cache. None on the local engine."""
    if settings.engine != "dask":
        return None
    from predictor.engine.dask_engine import ClusterConfig, dask_client
    from predictor.engine.dask_index import embed_profiles
    from predictor.search.prepare import prepare_profiles

    texts = prepare_profiles(profiles).embed_texts
    with dask_client(ClusterConfig.from_settings(settings)) as client:
        report = embed_profiles(texts, settings, client)
    return f"{report.embedded:,} profiles embedded on the Dask workers ({report.cached:,} from the cache)"
