"""Expensive state the tools share (`ToolDeps`): loaded lazily, once per process, never at import
time; the tables it holds are the stores of tools/stores.py. After a build's switch the next call
moves to the new version."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from predictor.errors import ValueDeskError
from predictor.layout import REBUILD_COMMAND, IntegrityError, clean_debris, current_name, current_version
from predictor.settings import Settings
from tools.mapped import heavy_columns, mapped_columns
from tools.stores import CustomerStore, NextBestActions, TransactionStore, ToolFailure, with_arrow_columns


log = logging.getLogger(__name__)


@dataclass
class _Slot:
    loader: Callable[[], Any]
    value: Any = None
    loaded: bool = False


class ToolDeps:
    """Typed access to the customers table, transactions, scorer, index and campaign catalogue.

    Anything passed to the constructor is used as-is (tests, benchmarks); the rest is loaded from
    `settings.data_dir` on first use. A lock makes the first load safe under a threaded server.
    """

    def __init__(self, settings: Settings, *, customers: pd.DataFrame | CustomerStore | None = None,
                 transactions: pd.DataFrame | None = None, scorer: Any = None, index: Any = None,
                 catalogue: Any = None, bundle: Any = None):
        self.settings = settings
        # Every file comes from the build version serving when these deps were made (predictor.layout).
        self.version = current_version(settings.data_dir)
        self._lock = threading.RLock()
        self._next: ToolDeps | None = None
        self._intact: set[str] = set()  # files of this version already checked against its manifest
        # model_health's report of this version (tools/functions/health.py), computed at most once per process.
        self.health_lock = threading.Lock()
        self.health_report: dict | None = None
        self._slots: dict[str, _Slot] = {
            "customers": _Slot(self._load_customers),
            "transactions": _Slot(self._load_transactions),
            "bundle": _Slot(self._load_bundle),
            "scorer": _Slot(self._load_scorer),
            "index": _Slot(self._load_index),
            "catalogue": _Slot(self._load_catalogue),
            "next_best_actions": _Slot(lambda: NextBestActions(self.customers, self.catalogue, self.settings.currency_symbol,
                                                                self.horizon_days or self.settings.horizon_days)),
            "planning_customers": _Slot(self._load_planning_customers),
            "partial_search": _Slot(self._load_partial_search),
            "product_information": _Slot(self._load_product_information),
        }
        given = {"customers": customers, "transactions": transactions, "scorer": scorer, "index": index,
                 "catalogue": catalogue, "bundle": bundle}
        self._injected = any(v is not None for v in given.values())
        for name, value in given.items():
            if value is not None:
                if name == "customers" and isinstance(value, pd.DataFrame):
                    value = CustomerStore(value)
                if name == "transactions" and isinstance(value, pd.DataFrame):
                    value = TransactionStore(value)
                self._slots[name].value, self._slots[name].loaded = value, True

    def current(self) -> ToolDeps:
        """These deps while their build serves; once a build has moved `current`, deps for the new version
        (loaded lazily, shared by later calls). Deps built from given objects (tests) never move."""
        if self._injected:
            return self
        name = current_name(self.settings.data_dir)
        if name == self.version.name:
            return self
        with self._lock:
            if self._next is None or self._next.version.name != name:
                self._next = ToolDeps(self.settings)
            return self._next

    def _get(self, name: str) -> Any:
        slot = self._slots[name]
        if not slot.loaded:
            with self._lock:
                if not slot.loaded:
                    slot.value = slot.loader()
                    slot.loaded = True
        return slot.value

    @property
    def customers(self) -> CustomerStore:
        return self._get("customers")

    @property
    def horizon_days(self) -> int | None:
        """The prediction horizon of the served scores: the model bundle's; for deps given a customers
        table without a model (tests, benches), the table's own horizon_days column."""
        try:
            return self.bundle.horizon_days
        except ValueDeskError:
            frame = self.customers.frame
            if "horizon_days" in frame.columns and len(frame) and pd.notna(frame["horizon_days"].iloc[0]):
                return int(frame["horizon_days"].iloc[0])
            return None

    @property
    def transactions(self) -> TransactionStore | None:
        return self._get("transactions")

    @property
    def bundle(self) -> Any:
        return self._get("bundle")

    @property
    def scorer(self) -> Any:
        return self._get("scorer")

    @property
    def index(self) -> Any:
        return self._get("index")

    @property
    def catalogue(self) -> Any:
        return self._get("catalogue")

    @property
    def next_best_actions(self) -> NextBestActions:
        return self._get("next_best_actions")

    @property
    def planning_customers(self) -> pd.DataFrame:
        """The customers table narrowed for campaign planning (predictor.campaigns.planning.planning_frame)."""
        return self._get("planning_customers")

    @property
    def partial_search(self) -> Any:
        """Search over the profiles embedded so far (predictor.search.jobs.PartialSearch), while indexing runs."""
        return self._get("partial_search")

    def has_product_information(self) -> bool:
        """Whether the serving build's log names products (its build report's category coverage): without
        them profiles say nothing about what customers buy. True for a data directory with no build record.
        Read once per build version."""
        return self._get("product_information")

    def _load_product_information(self) -> bool:
        from predictor.build_state import read_build_info

        info = read_build_info(self.version)
        if not info:
            return True
        return bool((info.get("report") or {}).get("category_coverage"))

    def index_state(self) -> Any:
        """Background indexing progress (predictor.search.jobs.IndexState), read fresh on each call
        (a few hundred bytes); None when no background indexing ever ran in this data directory."""
        read_index_state = _import("predictor.search.jobs", "read_index_state", "the profile index")
        return read_index_state(self.settings.data_dir)

    def warm(self) -> None:
        """At a server's start: remove what killed builds left, check the serving build's files against its
        manifest (each problem is logged; the tools that need a damaged file answer with its error), and
        load what every request needs up front, so the first caller does not pay for it."""
        clean_debris(self.settings.data_dir)
        for problem in self.version.verify_all(self._intact):
            log.error("%s", problem)
        try:
            self.customers
            self.transactions
        except ValueDeskError as exc:  # each request that needs the table reports it; the rest still serves
            log.error("customer tables unavailable: %s", exc)
            return
        try:
            self.next_best_actions
        except ValueDeskError as exc:  # get_customer reports it per call; the rest still serves
            log.warning("next best actions unavailable: %s", exc)

    # ------------------------------------------------------------ loaders

    def _not_built(self, what: str, path: Path) -> ToolFailure:
        return ToolFailure("not_built", f"No {what} ({self.version.rel(path)}) in the data directory.",
                           "Run `valuedesk build` first (or point VALUEDESK_DATA_DIR at a built data directory).")

    def _read_table(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """A parquet file of the pinned version, checked against its manifest first; a damaged file is a
        specific error naming it and the command that rebuilds it."""
        path = self.version.path(name)
        self._verify(name)
        try:
            # One column per block, each Arrow column freed once converted: same frame, but without the
            # consolidating copy, which doubled the load's peak memory and time (10M customers: 2 x 5.6 GB).
            return pd.read_parquet(path, columns=columns,
                                   to_pandas_kwargs={"split_blocks": True, "self_destruct": True})
        except (OSError, ValueError) as exc:  # pyarrow's errors are OSError/ValueError subclasses
            raise self._unreadable(path, exc) from exc

    def _verify(self, name: str) -> None:
        if name in self._intact:  # hashed once per version (warm checks every file at start-up)
            return
        try:
            self.version.verify(name)
            self._intact.add(name)
        except IntegrityError as exc:
            raise ToolFailure("not_built", str(exc), "The build's files were damaged or edited after it wrote "
                              "them; rebuild, or point VALUEDESK_DATA_DIR at an intact data directory.") from exc

    def _load_customers(self) -> CustomerStore:
        path = self.version.path("customers.parquet")
        if not path.exists():
            raise self._not_built("customers table", path)
        self._verify("customers.parquet")
        try:
            import pyarrow.parquet as pq

            schema = pq.read_schema(path)
        except (OSError, ValueError) as exc:
            raise self._unreadable(path, exc) from exc
        names, heavy = schema.names, heavy_columns(schema)
        if not heavy:
            return CustomerStore(self._read_table("customers.parquet"))
        # Filters, sorts and lookups need their columns as arrays in memory; the heavy ones (profile
        # texts, lists, model features) are only read per returned row: mapped from disk (tools/mapped.py).
        frame = self._read_table("customers.parquet", [c for c in names if c not in heavy])
        try:
            table = mapped_columns(path, heavy)
        except (OSError, ValueError) as exc:
            raise self._unreadable(path, exc) from exc
        return CustomerStore(with_arrow_columns(frame, table), mapped=heavy)

    def _unreadable(self, path: Path, exc: BaseException) -> ToolFailure:
        return ToolFailure("not_built", f"{self.version.rel(path)} cannot be read ({type(exc).__name__}: "
                           f"{_short(exc)}).", f"Rebuild it with `{REBUILD_COMMAND}`.")

    def _load_transactions(self) -> TransactionStore | None:
        path = self.version.path("transactions.parquet")
        if not path.exists():
            return None  # recent orders are optional detail; the rest of get_customer still answers
        import pyarrow.parquet as pq

        self._verify("transactions.parquet")
        try:
            present = set(pq.read_schema(path).names)
        except (OSError, ValueError) as exc:
            raise self._unreadable(path, exc) from exc
        return TransactionStore(self._read_table("transactions.parquet",
                                                 [c for c in TransactionStore.COLUMNS if c in present]))

    def _load_bundle(self) -> Any:
        load_model = _import("predictor.model.artifacts", "load_model", "the model")
        return load_model(self.version.model_dir, verify=self.version.verify, shown=self.version.rel)

    def _load_scorer(self) -> Any:
        scorer_class = _import("predictor.model.scoring", "CustomerScorer", "the scorer")
        return scorer_class(self.bundle, self.settings)

    def _load_index(self) -> Any:
        settings = self.settings
        if not settings.chroma_url and not any((settings.data_dir / d).exists() for d in ("chroma", "chroma_columns")):
            # Fail fast: opening the index loads an embedding model, which is wasted work with nothing to search.
            raise ToolFailure("index_unavailable", "No profile index in the data directory.",
                              "Run `valuedesk build` (it writes the profiles and indexes them).")
        profile_index = _import("predictor.search.index", "ProfileIndex", "the profile index")
        try:
            # The collection indexed for this build; none recorded (a flat or older data dir): the alias's.
            return profile_index(settings, collection=self.version.index_record().get("collection"))
        except ValueDeskError as exc:
            raise ToolFailure("index_unavailable", f"The profile index cannot be opened: {exc}",
                              "Run `valuedesk build`, or check VALUEDESK_CHROMA_URL if the index runs as a server.") from exc

    def _load_partial_search(self) -> Any:
        partial_search = _import("predictor.search.jobs", "PartialSearch", "the profile index")
        return partial_search(self.settings)

    def _load_planning_customers(self) -> pd.DataFrame:
        planning_frame = _import("predictor.campaigns.planning", "planning_frame", "campaign planning")
        return planning_frame(self.customers.frame)

    def _load_catalogue(self) -> Any:
        load_catalogue = _import("predictor.campaigns.catalogue", "load_catalogue", "the campaign catalogue")
        return load_catalogue(self.settings)


def _short(exc: BaseException, limit: int = 160) -> str:
    """An exception's text without the server's absolute paths, cut to `limit` characters."""
    import re

    text = re.sub(r"(/[^\s'\"]+)+/", "", str(exc))
    return text if len(text) <= limit else text[:limit] + "..."


def _import(module: str, name: str, what: str) -> Any:
    """A predictor entry point, or a not_built error when this installation lacks it."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ToolFailure("not_built", f"{what.capitalize()} is not available in this installation ({exc}).",
                          "Reinstall ValueDesk (`make setup`) and run `valuedesk build`.") from exc
