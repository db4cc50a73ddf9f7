"""Observing the sidecar from Python: metrics, notebook summaries, chunked work with progress bars.

:class:`ObserveMixin` is one of :class:`vtpu.Client`'s bases.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

from . import arrow
from .coords import coords_array
from .progress import progress_bar, split_phext
from ._host import ClientHost

__all__ = ["ObserveMixin", "MetricsSnapshot"]


def _ms(v: Any) -> str:
    return "–" if v is None else f"{v:.3g}"


def _bytes(v: Any) -> str:
    if v is None:
        return "–"
    v = float(v)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if v < 1024 or unit == "GiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return ""


class MetricsSnapshot(dict):
    """One metrics snapshot (a plain ``dict`` as the sidecar sent it) that renders in notebooks.

    Keys: ``t``, ``uptime_s``, ``window_s``, ``total``, ``ops`` (per op: ``count``, ``errors``,
    ``bytes_in``, ``bytes_out``, ``mean_ms``, ``ops_per_s``, ``p50_ms``, ``p90_ms``,
    ``p99_ms``), ``workers``, ``http``, ``timers``, ``memory``, ``store``, ``server``, ``pool``.
    Rates and percentiles cover the last second (``None`` when nothing ran in it).
    """

    def summary(self) -> str:
        """One line: ops/s, requests, p50/p99, store entries, RSS."""
        t = self.get("total", {})
        store = self.get("store", {})
        rate = t.get("ops_per_s")
        return (
            f"{0 if rate is None else rate:.0f} ops/s, {t.get('count', 0)} requests "
            f"({t.get('errors', 0)} errors), p50 {_ms(t.get('p50_ms'))} ms, p99 {_ms(t.get('p99_ms'))} ms, "
            f"{store.get('entries', 0)} scrolls, RSS {_bytes(self.get('memory', {}).get('rss_bytes'))}"
        )

    def _repr_html_(self) -> str:
        rows = []
        for op, o in sorted(self.get("ops", {}).items(), key=lambda kv: -kv[1].get("count", 0))[:12]:
            rate = o.get("ops_per_s")
            rows.append(
                f"<tr><td style='text-align:left'>{html.escape(op)}</td><td>{o['count']}</td><td>{o['errors']}</td>"
                f"<td>{'–' if rate is None else f'{rate:.0f}'}</td><td>{_ms(o.get('p50_ms'))}</td>"
                f"<td>{_ms(o.get('p99_ms'))}</td><td>{_bytes(o.get('bytes_in'))}</td><td>{_bytes(o.get('bytes_out'))}</td></tr>"
            )
        busy = ", ".join(
            f"w{w['id']} " + ("–" if w.get("utilisation") is None else f"{100 * w['utilisation']:.0f}%") for w in self.get("workers", [])
        )
        head = "".join(f"<th>{h}</th>" for h in ("op", "requests", "errors", "ops/s", "p50 ms", "p99 ms", "in", "out"))
        return (
            "<div style='font-family:monospace;font-size:12px'>"
            f"<b>vTPU sidecar</b> — {html.escape(self.summary())}"
            + (f"<br>pool: {html.escape(busy)}" if busy else "")
            + f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )


class ObserveMixin(ClientHost):
    """Metrics, the HTTP address, and chunked uploads/imports with progress bars."""

    _http_url: str | None = None

    @property
    def http_url(self) -> str | None:
        """``http://host:port`` of the sidecar's HTTP server (dashboard at ``/``), or None when off."""
        return self._http_url

    def metrics(self, format: str = "json", *, details: bool = False, timeout: float | None = None) -> Any:
        """The sidecar's metrics.

        Parameters
        ----------
        format : {"json", "prometheus"}
            ``"json"`` returns a :class:`MetricsSnapshot` (a dict that renders as a table in
            Jupyter); ``"prometheus"`` returns the exposition text.
        details : bool
            With ``"json"``: add ``"details"``, e.g. ``expert_load`` (``{layers, counts}``:
            tokens the sidecar routed to each expert per layer since upload; the dashboard's heatmap).
        """
        params: dict[str, Any] = {"format": format, **({"details": True} if details else {})}
        res, frames = self.request("METRICS", params, timeout=timeout)
        if format == "prometheus":
            return bytes(frames[0]).decode("utf-8") if frames else ""
        return MetricsSnapshot(res)

    def live(self, seconds: float = 30.0, every: float = 0.5) -> MetricsSnapshot:
        """Show a live metrics summary in a notebook cell for ``seconds``; returns the last snapshot.

        Needs IPython (any Jupyter kernel has it). Stop early with the kernel's interrupt.
        """
        from IPython.display import HTML, display

        snap = self.metrics()
        handle = display(HTML(snap._repr_html_()), display_id=True)
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                time.sleep(every)
                snap = self.metrics()
                handle.update(HTML(snap._repr_html_()))
        except KeyboardInterrupt:
            pass
        return snap

    def _repr_html_(self) -> str:
        closed = getattr(self, "closed", False)
        where = html.escape(str(getattr(self, "address", "")))
        if closed:
            return f"<div style='font-family:monospace'><b>vtpu.Client</b> {where} (closed)</div>"
        try:
            snap = self.metrics(timeout=2.0)
        except Exception as e:  # a notebook repr must not raise
            return f"<div style='font-family:monospace'><b>vtpu.Client</b> {where}: no metrics ({html.escape(str(e))})</div>"
        link = f" — dashboard <a href='{html.escape(self._http_url)}/' target='_blank'>{html.escape(self._http_url)}</a>" if self._http_url else ""
        return f"<div style='font-family:monospace;font-size:12px'><b>vtpu.Client</b> {where}{link}</div>" + snap._repr_html_()

    def upload(
        self,
        coords: Any,
        values: Any,
        *,
        chunk: int = 65536,
        kind: str | None = None,
        dtype: str | None = None,
        progress: bool = True,
        timeout: float | None = None,
    ) -> int:
        """Store many values in batches of ``chunk`` rows, with a progress bar; returns rows written.

        Unlike :meth:`cput_batch` this is not atomic: each chunk is all or nothing, and an
        error stops the upload after the chunks already written.
        """
        c = coords_array(coords)
        n = len(c)
        if chunk < 1:
            raise ValueError("chunk must be >= 1")
        written = 0
        with progress_bar(n, "upload", "rows", enabled=progress) as bar:
            for at in range(0, n, chunk):
                part = values[at : at + chunk]
                body = arrow.encode_scrolls(c[at : at + chunk], part, kind=kind, dtype=dtype)
                res, _ = self.request("CPUT", {"batch": True}, [body], timeout=timeout)
                written += int(res.get("written", 0))
                bar.update(len(c[at : at + chunk]))
        return written

    def import_phext(
        self, path: str | Path, *, chunk_bytes: int = 4 << 20, progress: bool = True, timeout: float | None = None
    ) -> int:
        """Import a ``.phext`` file in pieces of about ``chunk_bytes``, with a progress bar.

        Stores exactly what :meth:`load_phext` stores (see :func:`vtpu.progress.split_phext`),
        but piece by piece: not atomic, and a file over the sidecar's request limit still
        loads. Returns scrolls stored.
        """
        data = Path(path).read_bytes()
        written = 0
        with progress_bar(len(data), f"import {Path(path).name}", "B", enabled=progress) as bar:
            for piece, covered in split_phext(data, chunk_bytes):
                res, _ = self.request("PHEXT_IMPORT", {}, [piece], timeout=timeout)
                written += int(res.get("written", 0))
                bar.update(covered)
        return written
