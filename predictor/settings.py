"""The one settings object: environment variables prefixed VALUEDESK_, read once per process."""

from __future__ import annotations

from functools import lru_cache
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
    builds_to_keep: int = Field(3, ge=1, description="Build versions kept under data_dir/builds (the serving one always).")

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

    # Campaigns
    campaign_catalogue: Path | None = None
    holdout_share: float = Field(0.1, ge=0.0, lt=1.0)
    export_max_age_hours: float = Field(24.0, gt=0, description=(
        "Audience exports (data_dir/exports) older than this are deleted when the next export is written."))

    # Serving
    api_key: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    max_body_bytes: int = 1_000_000
    max_json_depth: int = Field(64, ge=2, le=512, description=(
        "Deepest nesting of arrays/objects a request body (HTTP) or message (MCP stdio) may have."))

    # LLM
    llm_backend: str = Field("offline", pattern="^(offline|openai|vllm)$")
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str = "EMPTY"
    llm_timeout_s: float = 60.0

    # vLLM serving (agent.llm_server; the server runs in its own .venv-vllm)
    vllm_model: str = Field("smollm2-135m", description="Key of agent.llm_model.MODELS, or a HF id / local model dir.")
    vllm_host: str = "127.0.0.1"
    vllm_port: int = 8001
    vllm_python: Path = REPO_ROOT / ".venv-vllm" / "bin" / "python"
    vllm_startup_timeout_s: float = Field(300.0, gt=0)
    vllm_extra_args: str = Field("", description="Extra vLLM CLI arguments, shell-quoted.")
    vllm_kvcache_gb: int = Field(1, ge=1, description="VLLM_CPU_KVCACHE_SPACE for the CPU backend.")
    llm_tool_choice: str = Field("required", pattern="^(auto|required)$",
                                 description="'required' on the first step for weak models, 'auto' for capable ones.")

    # Agent (agent/: LangChain agent, offline planner, sessions)
    agent_tools: str = Field("", description="Comma-separated tool names the LLM sees; empty means all tools.")
    agent_max_steps: int = Field(6, ge=1, le=20, description="Model calls per question before the agent stops.")
    agent_history_turns: int = Field(6, ge=1, description="Past question/answer turns sent to the LLM.")
    agent_max_tool_chars: int = Field(12000, ge=500, description="Tool output size sent to the LLM; lists are shortened to fit.")
    agent_few_shot: bool = Field(True, description="Send prompts/examples.yaml to the LLM as example turns.")
    agent_grounding_retries: int = Field(1, ge=0, le=3, description="Times the LLM is asked to fix unverified numbers.")
    agent_session_max_turns: int = Field(24, ge=1, description="Turns a session keeps (older ones are dropped).")
    agent_session_max_bytes: int = Field(262144, ge=4096, description="Stored bytes a session keeps (oldest turns dropped).")
    agent_session_max_age_days: float = Field(30.0, gt=0, description="Turns older than this are forgotten.")
    agent_session_store_max_mb: float = Field(256.0, gt=0, description=(
        "Stored turns in all sessions together; past it the least recently used sessions are dropped."))
    agent_session_prune_every: int = Field(500, ge=1, description=(
        "Session writes between prunes of the whole store (also pruned at start and every 10 minutes)."))
    llm_max_tokens: int = Field(1024, ge=16)
    llm_max_call_tokens: int = Field(2048, ge=16, description=(
        "Cap on the token budget of a required tool call (the longest call the tools' bounded schemas "
        "admit); above it the call keeps llm_max_tokens."))
    llm_seed: int | None = Field(42, description="Sampling seed sent to the LLM (with temperature 0: repeatable answers).")
    llm_temperature: float = Field(0.0, ge=0.0, le=2.0)

    @property
    def build_root(self) -> Path:
        """The serving build's folder (predictor.layout), or the data dir itself when none was switched
        in. Readers that open several files pin one version with predictor.layout.current_version."""
        from predictor.layout import current_version

        return current_version(self.data_dir).root

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
