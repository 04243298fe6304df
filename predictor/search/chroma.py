"""One connection to Chroma (embedded on disk or a `chroma run` server): bounded timeouts, bulk
windows and errors translated into what the marketer or operator can act on."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

from predictor.errors import ValueDeskError
from predictor.search.errors import ProfileIndexError, is_disk_full


class ChromaConnection:
    """A Chroma client for `data_dir/chroma` (no url) or the server at `url`."""

    def __init__(self, data_dir: Path, url: str | None, timeout_s: float):
        self.data_dir, self.chroma_url, self.timeout_s = data_dir, url, timeout_s
        self._http_session = None
        self.client = self._connect()

    @property
    def mode(self) -> str:
        return "server" if self.chroma_url else "embedded"

    def where(self) -> str:
        return f"Chroma server {self.chroma_url}" if self.chroma_url else "the embedded Chroma index (chroma/ in the data directory)"

    def _connect(self):
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if not self.chroma_url:
            path = self.data_dir / "chroma"
            try:
                path.mkdir(parents=True, exist_ok=True)
                return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
            except Exception as exc:
                raise ProfileIndexError(f"cannot open the embedded Chroma index (chroma/ in the data directory): {exc}") from exc
        import httpx

        url = urlparse(self.chroma_url if "://" in self.chroma_url else f"http://{self.chroma_url}")
        if url.scheme not in {"http", "https"} or not url.hostname:
            raise ProfileIndexError(f"VALUEDESK_CHROMA_URL '{self.chroma_url}' is not an http(s)://host:port URL")
        port = url.port or (443 if url.scheme == "https" else 8000)
        base = f"{url.scheme}://{url.hostname}:{port}"
        # Chroma's HttpClient uses httpx with no timeout at all, so a dead or hung server would
        # block forever: probe it with a bounded request first.
        try:
            httpx.get(f"{base}/api/v2/heartbeat", timeout=self.timeout_s).raise_for_status()
        except httpx.HTTPError as exc:
            raise ProfileIndexError(
                f"Chroma server {base} is not reachable within {self.timeout_s:g}s ({type(exc).__name__}: {exc}). "
                "Start it (chroma run --path <dir> --port <port>) or unset VALUEDESK_CHROMA_URL to use the "
                "embedded index.") from exc
        try:
            client = chromadb.HttpClient(host=url.hostname, port=port, ssl=url.scheme == "https",
                                         settings=chroma_settings)
        except Exception as exc:
            raise ProfileIndexError(f"cannot connect to Chroma server {base}: {exc}") from exc
        self._http_session = getattr(getattr(client, "_server", None), "_session", None)
        self._set_timeout(self.timeout_s)
        return client

    def _set_timeout(self, seconds: float) -> None:
        session = getattr(self, "_http_session", None)
        if session is not None:
            import httpx
            session.timeout = httpx.Timeout(seconds, connect=self.timeout_s)

    @contextlib.contextmanager
    def bulk(self) -> Iterator[None]:
        """Bulk writes legitimately take longer than a query; still bounded."""
        self._set_timeout(max(60.0, 12 * self.timeout_s))
        try:
            yield
        finally:
            self._set_timeout(self.timeout_s)

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ValueDeskError:
            raise
        except Exception as exc:
            raise self.translate(what, exc) from exc

    def translate(self, what: str, exc: BaseException) -> ProfileIndexError:
        import httpx

        if is_disk_full(exc):
            return ProfileIndexError(f"{what} failed: disk full ({exc}); free space in the data directory and retry")
        if isinstance(exc, httpx.TimeoutException):
            return ProfileIndexError(f"{what} failed: {self.where()} did not answer within {self.timeout_s:g}s")
        if isinstance(exc, httpx.HTTPError):
            return ProfileIndexError(f"{what} failed: {self.where()} is unreachable ({type(exc).__name__}: {exc})")
        return ProfileIndexError(f"{what} failed on {self.where()}: {type(exc).__name__}: {exc}")


    def close(self) -> None:
        with contextlib.suppress(Exception):
            session = getattr(self, "_http_session", None)
            if session is not None:
                session.close()

