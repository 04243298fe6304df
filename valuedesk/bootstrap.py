"""First run of the UI: build what the data directory is missing, warm the agent, launch the screen.

`valuedesk ui` (and `python ui.py`) build the customer tables from the configured data when they are
missing (about a minute, progress in the terminal), then serve the Gradio app on 127.0.0.1:7860 while
the profiles are embedded and indexed in a background thread. ui.py is imported inside the handler only:
the wiring sits below the screen.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("valuedesk.ui")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
WARM_SESSION = "valuedesk-ui-warm-up"


def missing_artifacts(settings: Any, with_index: bool = True) -> list[str]:
    """What a first run still has to build: scores, customer tables, and (with a local index) the index."""
    missing = [p.name for p in (settings.scores_path, settings.customers_path) if not Path(p).exists()]
    if with_index and not settings.chroma_url:
        from predictor.layout import current_version

        # The serving build records the collection indexed for it; a chroma/ folder alone may be a run cut short.
        if not Path(settings.index_dir).exists() or not current_version(settings.data_dir).index_record():
            missing.append(Path(settings.index_dir).name + "/")
    return missing


def ensure_built(settings: Any, with_index: bool = True, progress: bool = True, background_index: bool = True) -> Any:
    """Build the data directory from the configured data when something is missing; None when complete.

    The customer tables come first and this returns as soon as they exist: embedding and indexing
    the profiles (minutes) go on in a background thread of this process (predictor.search.jobs),
    resuming whatever an earlier run left, while every other question already answers; profile
    search says it is still being built until then. `background_index=False` indexes here first
    (the old behaviour): when that fails, it says so and the app runs without profile search.
    """
    missing = missing_artifacts(settings, with_index)
    if not missing:
        return None
    from predictor.build import build
    from predictor.errors import ValueDeskError

    index_name = Path(settings.index_dir).name + "/"
    tables_missing = [m for m in missing if m != index_name]
    report = None
    if tables_missing or not background_index:
        print(f"First run: {', '.join(missing)} missing under {settings.data_dir}; building from "
              f"{settings.default_data} (about a minute; later runs start in seconds).", flush=True)
        try:
            report = build(settings, with_index=with_index and not background_index, progress=progress)
        except ValueDeskError as exc:
            if tables_missing:
                raise
            print(f"warning: the profile index could not be built ({exc}); starting without profile search.",
                  file=sys.stderr, flush=True)
            return None
        print(report.summary(), flush=True)
    if with_index and background_index:
        from predictor.search.jobs import start_index_job

        start_index_job(settings)
        print("Profile search: indexing the profiles in the background (progress in the UI's side panel); "
              "every other question answers now.", flush=True)
    return report


def warm(service: Any) -> None:
    """Load the customer tables and the agent in the background, so the first question does not wait.

    With the offline planner, one local question also loads its intent embeddings (exported once per
    data directory); an LLM backend is not asked anything.
    """
    def run() -> None:
        try:
            registry = getattr(service, "registry", None)
            if registry is not None and hasattr(registry, "warm"):
                registry.warm()  # tables plus the caches the fast tools use (sort orders, row reader, planning frame)
            getattr(service, "graph", None)
            if (service.backend_info() or {}).get("backend") == "offline":
                service.chat("how are my customers spread across tiers?", WARM_SESSION)
                service.reset(WARM_SESSION)
        except Exception as exc:  # noqa: BLE001 - the first question reports whatever is really wrong
            log.info("warm-up incomplete: %s", exc)

    threading.Thread(target=run, name="valuedesk-warm", daemon=True).start()


def launch(demo, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, css: str | None = None,
           head: str | None = None, **kwargs):
    """Serve the app; files under the data directory's exports folder may be downloaded.

    Gradio 6 takes the page's CSS and <head> (scripts) at launch(), no longer in Blocks(): `css` and `head`
    default to the app's own (`demo.valuedesk_page`, set by ui.build_app)."""
    allowed = list(getattr(demo, "valuedesk_allowed_paths", []))
    for path in allowed:
        Path(path).mkdir(parents=True, exist_ok=True)
    page = getattr(demo, "valuedesk_page", {})
    return demo.queue(default_concurrency_limit=4).launch(
        server_name=host, server_port=port, allowed_paths=allowed, show_error=False,
        css=page.get("css") if css is None else css, head=page.get("head") if head is None else head, **kwargs)


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"interface to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--no-build", action="store_true",
                        help="do not build missing scores or index first (questions then report what is missing)")
    parser.add_argument("--no-index", action="store_true", help="build without the profile search index")


def run_ui(args: argparse.Namespace) -> int:
    """Build what is missing, then serve the UI around the process's agent service."""
    import ui  # the screen sits above the wiring: imported only when the UI is started
    from agent.service import get_agent_service
    from predictor.search.jobs import read_index_state

    settings = args.settings
    if not args.no_build:
        ensure_built(settings, with_index=not args.no_index)
    service = get_agent_service(settings)
    demo = ui.build_app(service=service, settings=settings, index_status=lambda: read_index_state(settings.data_dir))
    warm(service)
    print(f"ValueDesk UI on http://{args.host}:{args.port}", flush=True)
    launch(demo, args.host, args.port, **ui_auth(settings))
    return 0


def ui_auth(settings) -> dict:
    """Gradio's own sign-in when VALUEDESK_UI_USERS names principals (the same keys as the API)."""
    if not settings.ui_users:
        return {}
    from tools.principals import key_store, ui_authenticator

    return {"auth": ui_authenticator(key_store(settings), settings.ui_users),
            "auth_message": "Sign in with your ValueDesk name and API key."}


def register(sub: argparse._SubParsersAction) -> None:
    """The `valuedesk ui` subcommand."""
    p = sub.add_parser("ui", help="open the chat UI in the browser (builds the data on first run)",
                       description="Serve the ValueDesk chat UI on 127.0.0.1:7860. On first run, builds scores, "
                                   "customer tables and the profile index from the configured data.")
    add_arguments(p)
    p.set_defaults(handler=run_ui)


def main(argv: list[str] | None = None) -> int:
    """`python ui.py`: the same as `valuedesk ui`."""
    from predictor.errors import ValueDeskError
    from valuedesk.config import load_settings

    parser = argparse.ArgumentParser(prog="python ui.py", description="ValueDesk chat UI.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.settings = load_settings()
    try:
        return run_ui(args)
    except ValueDeskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
