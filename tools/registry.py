"""The one tool registry every surface calls: validation, dispatch, and errors turned into data."""

from __future__ import annotations

import copy
import errno
import inspect
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from predictor.errors import ArtifactError, DataError, ValueDeskError
from predictor.customers.audience import FilterError
from predictor.settings import Settings
from tools import functions as fn
from tools import json_guard, telemetry
from tools import health_models as hm
from tools import models as m
from tools.audit import AuditLog, file_sha256
from tools.deps import ToolDeps, ToolFailure
from tools.principals import CLI_CALLER, Caller, current_caller

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class ToolSpec:
    name: str
    func: Callable[[Any, ToolDeps], BaseModel]
    args_model: type[BaseModel]
    result_model: type[BaseModel]
    # Code for a predictor error this tool raises that is not one of the generic kinds.
    error_code: str = "invalid_arguments"
    # Cheap tools answer in milliseconds; servers may run them inline instead of in a worker thread.
    fast: bool = False
    # The scope a caller needs (tools/principals.py): every tool reads; a few write files for the caller.
    scope: str = "read"

    def required_scope(self, args: BaseModel) -> str:
        """The scope this call needs: contact data in an export needs `export:contact`."""
        return "export:contact" if getattr(args, "include_contact", None) else self.scope

    @property
    def description(self) -> str:
        return inspect.cleandoc(self.func.__doc__ or "")


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("find_customers", fn.find_customers, m.FindCustomersArgs, m.FindCustomersResult, fast=True),
    ToolSpec("get_customer", fn.get_customer, m.GetCustomerArgs, m.CustomerDetail, fast=True),
    ToolSpec("segment_summary", fn.segment_summary, m.SegmentSummaryArgs, m.SegmentSummaryResult, fast=True),
    ToolSpec("search_profiles", fn.search_profiles, m.SearchProfilesArgs, m.SearchProfilesResult,
             error_code="index_unavailable"),
    ToolSpec("recommend_campaigns", fn.recommend_campaigns, m.CampaignArgs, m.RecommendCampaignsResult,
             error_code="campaign_error"),
    ToolSpec("export_audience", fn.export_audience, m.ExportAudienceArgs, m.ExportAudienceResult,
             error_code="campaign_error", scope="export"),
    ToolSpec("score_customer", fn.score_customer, m.ScoreCustomerArgs, m.ScoreCustomerResult,
             error_code="scoring_error"),
    ToolSpec("model_report", fn.model_report, hm.ModelReportArgs, hm.ModelReportResult, fast=True),
    ToolSpec("model_health", fn.model_health, hm.ModelHealthArgs, hm.ModelHealthResult),
)

HINTS = {
    "invalid_arguments": "Check the argument names and values against the tool's schema (`valuedesk tool --list`).",
    "not_built": "Run `valuedesk build` first.",
    "index_unavailable": "Run `valuedesk build` to (re)build the profile index, or check VALUEDESK_CHROMA_URL.",
    "campaign_error": "Check the campaign catalogue and the audience filter.",
    "scoring_error": "Check the orders: ISO timestamps and numeric amounts.",
}


# OSErrors that say the disk failed, not the code: (error code, what happened).
STORAGE_ERRNOS = {
    errno.ENOSPC: ("insufficient_storage", "no space left on the device"),
    errno.EDQUOT: ("insufficient_storage", "the disk quota is exhausted"),
    errno.EROFS: ("storage_unavailable", "the file system is read-only"),
    errno.EACCES: ("storage_unavailable", "permission denied"),
}
STORAGE_HINTS = {
    "insufficient_storage": "Free space (or quota) on the disk that holds the data directory, then try again.",
    "storage_unavailable": "Make the data directory (VALUEDESK_DATA_DIR) writable by the server's user, then try again.",
}


def _tool_error(code: str, message: str, hint: str | None, fields: list[dict[str, str]] | None = None) -> m.ToolError:
    return m.ToolError(code=code, message=message, hint=hint, fields=fields)


def _storage_os_error(exc: BaseException) -> OSError | None:
    """The first disk-failure OSError in the exception, its causes or the exceptions it was raised during."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, OSError) and item.errno in STORAGE_ERRNOS:
            return item
        todo += [item.__context__, item.__cause__]
    return None


def _failed_file(exc: OSError) -> str | None:
    """The file an OSError was about: its filename, else the innermost `path` local on its traceback
    (a write() that fails with ENOSPC names no file)."""
    if isinstance(exc.filename, (str, os.PathLike)):
        return os.fspath(exc.filename)
    found = None
    tb = exc.__traceback__
    while tb is not None:
        value = tb.tb_frame.f_locals.get("path")
        if isinstance(value, (str, os.PathLike)):
            found = os.fspath(value)
        tb = tb.tb_next
    return found


def _storage_error(name: str, exc: BaseException, settings: Settings) -> m.ToolError | None:
    os_error = _storage_os_error(exc)
    if os_error is None:
        return None
    code, what = STORAGE_ERRNOS[os_error.errno]
    file = _failed_file(os_error)
    where = "the data directory"
    if file:  # named relative to the data directory, never by an absolute server path
        try:
            where = Path(file).resolve().relative_to(Path(settings.data_dir).resolve()).as_posix()
        except (ValueError, OSError):
            where = Path(file).name
    verb = "access" if os_error.errno == errno.EACCES else "write"
    return _tool_error(code, f"{name} could not {verb} {where}: {what}.", STORAGE_HINTS[code])


def _surrogate_error(name: str, raw_args: Any) -> m.ToolError | None:
    problem = json_guard.find_problem(raw_args) if isinstance(raw_args, dict) else None
    if problem is None or problem.kind != "lone_surrogate":
        return None
    return _tool_error("invalid_arguments", f"Invalid arguments for {name}: {problem.message}",
                       "Send text as valid Unicode: a \\udXXX escape needs its partner (a surrogate pair).",
                       fields=[{"field": problem.path, "reason": problem.message}])


def _field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]) or "(body)", "reason": e["msg"]} for e in exc.errors()]


def _strip_defaults(schema: Any, names: bool = False) -> Any:
    """Strict-mode function schemas take no `default` (every property is required and nullable instead),
    and drop pydantic's `title`s ("Min Churn Risk" for min_churn_risk): they tell a model nothing and cost
    ~1,500 prompt characters over the eight tools, which a small model's context cannot spare.
    `names`: `schema` maps property names to schemas (a property called "title" stays)."""
    if isinstance(schema, dict):
        return {k: _strip_defaults(v, names=k in ("properties", "$defs") and not names)
                for k, v in schema.items() if names or (k != "default" and not (k == "title" and isinstance(v, str)))}
    if isinstance(schema, list):
        return [_strip_defaults(v) for v in schema]
    return schema


def export_facts(result: BaseModel | None) -> dict[str, Any] | None:
    """What the audit keeps of an export: the file, its rows and a hash of its content."""
    if not isinstance(result, m.ExportAudienceResult):
        return None
    return {"file": result.file, "rows": result.rows, "sha256": file_sha256(Path(result.path)),
            "columns": result.columns}


class ToolRegistry:
    def __init__(self, deps: ToolDeps, tools: tuple[ToolSpec, ...] = TOOLS):
        self.deps = deps
        self.tools = {t.name: t for t in tools}
        self.audit = AuditLog(deps.settings.audit_path)
        endpoint = getattr(deps.settings, "otel_endpoint", None)  # serving settings only
        if endpoint:
            telemetry.configure(endpoint)

    @property
    def settings(self) -> Settings:
        return self.deps.settings

    def warm(self) -> None:
        """Load the data and build the caches the tools share (servers call this before taking traffic)."""
        fn.prepare(self.deps)

    def names(self) -> list[str]:
        return list(self.tools)

    def spec(self, name: str) -> ToolSpec | None:
        return self.tools.get(name)

    # ------------------------------------------------------------ schemas

    def openai_tools(self) -> list[dict[str, Any]]:
        """OpenAI function-tool definitions in strict mode (additionalProperties false, all required, nullable)."""
        from openai import pydantic_function_tool

        out = []
        for spec in self.tools.values():
            tool = pydantic_function_tool(spec.args_model, name=spec.name, description=spec.description)
            tool = copy.deepcopy(dict(tool))
            tool["function"] = dict(tool["function"])
            tool["function"]["parameters"] = _strip_defaults(tool["function"]["parameters"])
            out.append(tool)
        return out

    def input_schema(self, name: str) -> dict[str, Any]:
        return self.tools[name].args_model.model_json_schema()

    def output_schema(self, name: str) -> dict[str, Any]:
        return self.tools[name].result_model.model_json_schema(mode="serialization")

    # ------------------------------------------------------------ calls

    def error(self, name: str, code: str, message: str, hint: str | None = None,
              fields: list[dict[str, str]] | None = None) -> m.ToolError:
        return m.ToolError(code=code, message=message, hint=hint if hint is not None else HINTS.get(code),
                           fields=fields)

    def call(self, name: str, raw_args: dict[str, Any] | BaseModel | None = None,
             caller: Caller | None = None) -> m.ToolResult:
        """Validate `raw_args`, run the tool, and return its result or a structured error. Never raises
        a ValueDeskError; an unexpected exception becomes `internal_error` (logged with its traceback)."""
        started = time.perf_counter()
        result, error = self.run(name, raw_args, caller)
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        if error is not None:
            return m.ToolResult(tool=name, ok=False, error=error, elapsed_ms=elapsed)
        return m.ToolResult(tool=name, ok=True, result=result.model_dump(mode="json"), elapsed_ms=elapsed)

    def run(self, name: str, raw_args: dict[str, Any] | BaseModel | None = None, caller: Caller | None = None
            ) -> tuple[BaseModel | None, m.ToolError | None]:
        """Like `call`, but hands back the typed result model (servers serialise it straight to JSON bytes).
        `caller` (default: the one the surface set in `current_caller`, else the command line's owner) must
        hold the tool's scope; every call, allowed or not, goes into the audit trail."""
        caller = caller or current_caller.get() or CLI_CALLER
        started, started_ns = time.perf_counter(), time.time_ns()
        args, result, error = self._checked_run(name, raw_args, caller)
        size = len(result.model_dump_json()) if result is not None else 0
        withdrawn = self._audit(name, raw_args, args, result, size, error, caller, time.perf_counter() - started)
        error = withdrawn or error
        telemetry.record_tool_call(name, caller.principal.name, caller.surface, started_ns, time.time_ns(),
                                   error.code if error is not None else None, size)
        return (None, error) if withdrawn is not None else (result, error)

    def _audit(self, name, raw_args, args, result, size: int, error, caller: Caller,
               seconds: float) -> m.ToolError | None:
        """Append the call's record; a read goes on when the trail cannot be written (logged), an export is
        withdrawn (its file deleted, the error returned): no audience file leaves without its record."""
        export = export_facts(result)
        try:
            record = {"principal": caller.principal.name, "surface": caller.surface, "tool": name,
                      # Arguments that did not validate are not kept (any size, any content): only their names.
                      "args": (self.audit.scrub(args.model_dump(mode="json", exclude_none=True)) if args is not None
                               else {"invalid": sorted(map(str, raw_args))[:50] if isinstance(raw_args, dict) else []}),
                      "result_bytes": size,
                      "duration_ms": round(seconds * 1000, 3), "error": error.code if error is not None else None}
            if export:
                record["export"] = export
            self.audit.append(record)
        except OSError as exc:
            log.error("audit trail not written (%s): %s call by %s", exc, name, caller.principal.name)
            if export:
                Path(result.path).unlink(missing_ok=True)
                return self.error(name, "storage_unavailable", "The export was withdrawn: the audit trail could not be "
                                  f"written ({exc.strerror or type(exc).__name__}).",
                                  "Make the data directory's audit/ folder writable, then export again.")
        return None

    def _checked_run(self, name: str, raw_args, caller: Caller):
        spec = self.tools.get(name)
        if spec is None:
            return None, None, self.error(name, "unknown_tool", f"There is no tool named '{name}'.",
                                    f"Available tools: {', '.join(self.tools)}.")
        try:
            if isinstance(raw_args, spec.args_model):
                args = raw_args
            else:
                if isinstance(raw_args, BaseModel):
                    raw_args = raw_args.model_dump()
                if raw_args is None:
                    raw_args = {}
                if not isinstance(raw_args, dict):
                    return None, None, self.error(name, "invalid_arguments", "Arguments must be a JSON object.")
                args = spec.args_model.model_validate(raw_args)
            required = spec.required_scope(args)
            if not caller.principal.allows(required):
                return args, None, self.error(name, "forbidden", f"{name} needs the '{required}' scope, which the "
                                              f"key of '{caller.principal.name}' does not have.",
                                              "Ask an admin for a key with that scope (`valuedesk keys add`).")
        except ValidationError as exc:
            fields = _field_errors(exc)
            message = "; ".join(f"{f['field']}: {f['reason']}" for f in fields)
            return None, None, self.error(name, "invalid_arguments", f"Invalid arguments for {name}: {message}",
                                    fields=fields)
        except FilterError as exc:
            return None, None, self.error(name, "invalid_arguments", str(exc))
        try:
            # A ValidationError from here on is the tool's own output failing its model: a bug, not bad input.
            # One build version per call: after a build's switch the next call gets the new version's deps.
            deps = self.deps = self.deps.current()
            return args, spec.func(args, deps), None
        except ToolFailure as exc:
            # A tool that wrapped a full or read-only disk as internal_error still gets the storage code.
            storage = _storage_error(name, exc, self.settings) if exc.code == "internal_error" else None
            return args, None, storage or self.error(name, exc.code, exc.message, exc.hint)
        except (FilterError, DataError) as exc:
            return None, None, self.error(name, "invalid_arguments", str(exc))
        except ArtifactError as exc:
            return None, None, self.error(name, "not_built", str(exc))
        except ValueDeskError as exc:
            field = getattr(exc, "field", None)
            message = str(getattr(exc, "message", None) or exc)
            return None, None, self.error(name, spec.error_code, message, getattr(exc, "hint", None),
                                    fields=[{"field": field, "reason": message}] if field else None)
        except Exception as exc:  # noqa: BLE001 - errors are data; the traceback stays in the server log
            # Not bugs: the disk (full, over quota, read-only, not ours) or text that is not Unicode.
            known = _storage_error(name, exc, self.settings) or _surrogate_error(name, raw_args)
            if known is not None:
                log.warning("tool %s failed: %s", name, known.message)
                return None, None, known
            log.exception("tool %s failed", name)
            return None, None, self.error(name, "internal_error", f"{name} failed unexpectedly.",
                                    "This is a bug; the server log has the details.")


class PerSettings(Generic[T]):
    """One object per distinct settings, built on first use: settings equal in type and values share it
    (a copy of the process's settings finds the same registry; a freed settings object's reused id never
    hands out another's). Only the `size` most recently used are kept, so a long process that is handed
    many settings (tests, the eval harness) does not hold every registry's tables forever."""

    def __init__(self, build: Callable[[Any], T], size: int = 8):
        self._build, self._size = build, size
        self._items: OrderedDict[tuple[str, str], T] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(settings: BaseModel) -> tuple[str, str]:
        return type(settings).__qualname__, settings.model_dump_json()

    def get(self, settings: BaseModel) -> T:
        key = self.key(settings)
        with self._lock:
            item = self._items.get(key)
            if item is None:
                item = self._items[key] = self._build(settings)
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
            self._items.move_to_end(key)
            return item

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_registries: PerSettings[ToolRegistry] = PerSettings(lambda settings: ToolRegistry(ToolDeps(settings)))


def get_registry(settings: Settings) -> ToolRegistry:
    """The process-wide registry for these settings (deps load lazily on first use)."""
    return _registries.get(settings)
