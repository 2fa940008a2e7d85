"""Where a PromptClient reads prompts from: a registry server's /v1 API over httpx
(`_HttpSource`), or a registry database through promptgate.store (`_StoreSource`). Both answer
version objects and raise the SDK's markers (_NotFound, _Transient, PromptAccessError)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from .._cutter import Cutter
from ..errors import StoreClosed, UnknownRef
from ..resolved import resolution_of, snapshot_resolved, with_resolution
from .errors import PromptAccessError, PromptError, _NotFound, _Transient
from .prompt import LATEST


def _detail(response: Any) -> str:
    try:
        body = response.json()
        return str(body.get("detail") or body)
    except Exception:
        return str(response.text[:200])


class _HttpSource:
    """A registry server's /v1 API (httpx). One connection pool for callers' first fetches and
    one for the refresher, so a long-poll never holds up a first fetch."""

    kind = "http"

    def __init__(self, url: str, api_key: str | None, timeout_s: float) -> None:
        # lazy, not a cycle: only a client of an http(s) registry pays for importing httpx
        import httpx

        self.httpx = httpx
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout_s = timeout_s
        self.front = self._client()
        self.back = self._client()
        self.cutter = Cutter()

    def _client(self) -> Any:
        return self.httpx.Client(base_url=self.url, headers=self.headers, timeout=self.timeout_s)

    def after_fork(self) -> None:
        # The parent's connections are shared with it and their pool locks may have been held
        # at the fork: abandon them, never touch them (kept referenced: no ResourceWarning).
        _ABANDONED.extend((self.front, self.back))
        self.front = self._client()
        self.back = self._client()
        self.cutter = Cutter()

    def interrupt(self) -> None:
        """End the refresher's request in flight (from close(), on another thread)."""
        self.cutter.cut()

    def close(self, front: bool = True, back: bool = True) -> None:
        for client in ([self.front] if front else []) + ([self.back] if back else []):
            try:
                client.close()
            except Exception:
                pass

    def _get(
        self,
        client: Any,
        path: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        try:
            response = client.get(
                path,
                params=params,
                headers=headers,
                timeout=timeout if timeout is not None else self.timeout_s,
                extensions={"trace": self.cutter.trace} if client is self.back else None,
            )
        except self.httpx.HTTPError as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        except RuntimeError as exc:  # "client has been closed" while closing
            raise _Transient(str(exc)) from None
        status = response.status_code
        if status < 300 or status == 304:
            return response
        if status in (401, 403):
            raise PromptAccessError(
                f"registry {self.url} refused the API key (HTTP {status}): {_detail(response)}"
            )
        if status == 404:
            raise _NotFound(_detail(response))
        if status >= 500 or status in (408, 425, 429):
            raise _Transient(f"HTTP {status}: {_detail(response)}")
        raise PromptError(f"registry {self.url}: HTTP {status}: {_detail(response)}")

    @staticmethod
    def _json(response: Any) -> Any:
        try:
            return response.json()
        except ValueError:
            raise _Transient("the registry answered with something that is not JSON") from None

    def version(self, name: str, version: int, back: bool = False) -> dict[str, Any]:
        response = self._get(
            self.back if back else self.front,
            f"/v1/prompts/{quote(name)}",
            params={"version": version},
        )
        return self._json(response)  # type: ignore[no-any-return]

    def label(
        self, name: str, label: str, etag: str | None = None, back: bool = False
    ) -> tuple[dict[str, Any] | None, str | None, int | None]:
        """(version object, ETag, seq); (None, etag, seq) when unchanged (304). The seq is the
        event the answer reflects at least (X-Promptgate-Seq; None from an older server)."""
        response = self._get(
            self.back if back else self.front,
            f"/v1/prompts/{quote(name)}",
            params={"label": label},
            headers={"If-None-Match": etag} if etag else None,
        )
        raw_seq = response.headers.get("x-promptgate-seq", "")
        seq = int(raw_seq) if raw_seq.isascii() and raw_seq.isdecimal() else None
        if response.status_code == 304:
            return None, etag, seq
        return self._json(response), response.headers.get("etag"), seq

    def snapshot(
        self, label: str, names: Sequence[str] | None, back: bool = False
    ) -> tuple[int, dict[str, dict[str, Any]]]:
        params: dict[str, Any] = {"label": label}
        if names:
            params["names"] = ",".join(names)
        body = self._json(
            self._get(self.back if back else self.front, "/v1/snapshot", params=params)
        )
        try:
            return int(body["seq"]), dict(body["prompts"])
        except (KeyError, TypeError, ValueError):
            raise _Transient("malformed snapshot from the registry") from None

    def events(self, since: int, wait_s: float) -> list[dict[str, Any]]:
        response = self._get(
            self.back,
            "/v1/events",
            params={"since": since, "timeout": wait_s},
            timeout=wait_s + self.timeout_s,
        )
        body = self._json(response)
        try:
            return list(body["events"])
        except (KeyError, TypeError):
            raise _Transient("malformed events from the registry") from None


_ABANDONED: list[Any] = []  # a forked child's copies of its parent's connections


class _StoreSource:
    """A registry database read directly through promptgate.store.Store."""

    kind = "store"

    def __init__(self, url: str) -> None:
        # lazy, not a cycle: `import promptgate.sdk` must not load SQLAlchemy (the store) unless
        # a database URL is used (tests/test_imports.py)
        import sqlalchemy.exc

        from ..store import Store

        # StoreClosed: a refresher finishing its last read after close() is not an error
        self.db_errors: tuple[type[BaseException], ...] = (
            sqlalchemy.exc.SQLAlchemyError,
            OSError,
            StoreClosed,
        )
        self.store = Store(url)
        self.url = url

    def after_fork(self) -> None:
        # The parent's pooled connections belong to the parent: drop them without closing.
        self.store.engine.dispose(close=False)

    def close(self, front: bool = True, back: bool = True) -> None:
        if front and back:
            self.store.close()

    def interrupt(self) -> None:
        """Nothing to cut: the refresher's reads are short and it waits on its stop event."""

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except UnknownRef as exc:
            raise _NotFound(str(exc)) from None
        except self.db_errors as exc:
            raise _Transient(f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None

    def version(self, name: str, version: int, back: bool = False) -> dict[str, Any]:
        v = self._call(self.store.get_version, name, version)
        return with_resolution(v.to_json(), self._call(resolution_of, self.store, v, LATEST))

    def label(
        self, name: str, label: str, etag: str | None = None, back: bool = False
    ) -> tuple[dict[str, Any] | None, str | None, int | None]:
        seq, found = self.snapshot(label, [name])
        if name not in found:
            self._call(self.store.resolve, name, label)  # the precise "not found"
            raise _NotFound(f"unknown ref {name}@{label}")
        return found[name], None, seq

    def snapshot(
        self, label: str, names: Sequence[str] | None, back: bool = False
    ) -> tuple[int, dict[str, dict[str, Any]]]:
        seq, versions, resolutions = self._call(
            snapshot_resolved, self.store, label, list(names) if names else None
        )
        return seq, {n: with_resolution(v.to_json(), resolutions[n]) for n, v in versions.items()}

    def label_map(self, label: str) -> dict[str, int]:
        return self._call(self.store.label_map, label)  # type: ignore[no-any-return]
