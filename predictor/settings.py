"""Data and model settings: what the analytics core needs (data, training, tiers, index, campaigns).

The layers above extend this class with their own groups (tools.settings.ServingSettings for the HTTP
and MCP surfaces, agent.settings.AgentSettings for the LLM and the agent), all read from environment
variables prefixed VALUEDESK_. The environment is read once per process, by valuedesk.config.load_settings;
core code takes the settings it is given."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VALUEDESK_", extra="ignore")

    data_dir: Path = Field(REPO_ROOT / ".valuedesk", description="Where models, scores, profiles and the index live.")
    default_data: Path = Field(SHARED_DATA / "online_retail" / "online_retail.csv.gz")
    default_schema: str = "online_retail"
    horizon_days: int = Field(180, ge=7, le=730)
    # "fast" trains on fewer cutoffs and a one-point grid: for quick looks and tests, not for reported figures.
    training_profile: str = Field("full", pattern="^(full|fast)$")
    currency_symbol: str = "£"
    duckdb_memory_limit: str = "2GB"
    threads: int = Field(2, ge=1)
    random_seed: int = 42
    builds_to_keep: int = Field(3, ge=1, description=(
        "Build versions kept under data_dir/builds (the serving one always): the model versions "
        "`valuedesk model use` can roll back to."))

    # Execution engine (predictor/engine): "local" runs in this process; "dask" trains and scores from
    # customer buckets on a Dask cluster: the scheduler's address, or a LocalCluster of dask_workers
    # processes (default one per core) with dask_worker_memory each (Dask's "auto": the machine's share).
    engine: str = Field("local", pattern="^(local|dask)$")
    dask_scheduler: str | None = Field(None, description="tcp://HOST:8786 of a running Dask scheduler.")
    dask_workers: int | None = Field(None, ge=1)
    dask_worker_memory: str = "auto"
    # How the Dask engine trains: on one worker (the training sample's rows in one process), with
    # xgboost.dask across the workers, or auto: one worker while the sample fits half a worker's memory.
    dask_training: str = Field("auto", pattern="^(auto|one_worker|xgboost_dask)$")

    # Data loading and cleaning (predictor/data/load.py)
    outlier_robust_z: float = Field(8.0, gt=0, description="Flag purchase lines this many robust SDs above the median log line amount.")

    # Tiering
    tier_method: str = Field("quantile", pattern="^(quantile|amount)$")
    tier_thresholds: str = "Platinum=0.01,Gold=0.05,Silver=0.20"
    kmeans_clusters: str = "3-8"

    # Profiles and index
    embedding_model: str = "minilm"
    chroma_url: str | None = None
    chroma_timeout_s: float = 5.0
    # Profile index search plans: up to index_scan_max profiles every query is ranked exactly (an 8-bit
    # scan of the filtered vectors, re-scored in float32). Above it, filters matching at most
    # index_exact_max profiles are ranked exactly; larger ones use HNSW with over-fetch + post-filter.
    index_scan_max: int = Field(1_048_576, ge=0)
    index_exact_max: int = Field(40_000, ge=0)
    index_overfetch: float = Field(2.0, ge=1.0)

    # Model health (predictor/model/health.py): data minimums and retrain triggers
    data_check: str = Field("refuse", pattern="^(refuse|warn)$", description=(
        "What a build does with data below the hard minimums (`valuedesk check-data`): stop, or warn and go on."))
    health_min_customers: int = Field(500, ge=1, description="Customers with orders below which no prediction is offered.")
    health_min_history_days: int = Field(180, ge=1, description="Days of history below which no prediction is offered.")
    health_min_repeat_share: float = Field(0.05, ge=0, le=1, description="Repeat-buyer share below which health warns.")
    health_max_model_age_days: int = Field(30, ge=1, description="Days after the model's data end when a retrain is due.")
    health_max_drifted_share: float = Field(0.3, gt=0, le=1, description="Share of drifted features from which a retrain is due.")
    health_max_estimated_mae_rise: float = Field(0.25, gt=0, description=(
        "Rise of the estimated spend MAE over the last closed window's from which a retrain is due."))

    # Campaigns
    campaign_catalogue: Path | None = None
    holdout_share: float = Field(0.1, ge=0.0, lt=1.0)
    export_max_age_hours: float = Field(24.0, gt=0, description=(
        "Audience exports (data_dir/exports) older than this are deleted when the next export is written."))
    exports_dir: Path | None = Field(None, description=(
        "Where audience exports are written (default data_dir/exports): API replicas serving a read-only "
        "data directory point it at a writable folder of their own."))
    audit_dir: Path | None = Field(None, description=(
        "Where the audit trail is kept (default data_dir/audit, tools/audit.py): replicas serving a read-only "
        "data directory point it at a writable folder of their own."))

    @property
    def build_root(self) -> Path:
        """The serving build's folder (predictor.layout), or the data dir itself when none was switched
        in. Readers that open several files pin one version with predictor.layout.current_version."""
        from predictor.layout import current_version

        return current_version(self.data_dir).root

    @property
    def exports_path(self) -> Path:
        """The folder audience exports are written to (exports_dir, or data_dir/exports)."""
        return self.exports_dir or self.data_dir / "exports"

    @property
    def audit_path(self) -> Path:
        """The folder of the audit trail (audit_dir, or data_dir/audit)."""
        return self.audit_dir or self.data_dir / "audit"

    @property
    def model_dir(self) -> Path:
        return self.build_root / "models"

    @property
    def scores_path(self) -> Path:
        return self.build_root / "scores.parquet"

    @property
    def customers_path(self) -> Path:
        return self.build_root / "customers.parquet"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "chroma"
