"""Metrics from Python, /metrics through a real Prometheus parser, notebook HTML, progress bars."""

from __future__ import annotations

import random
import re
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import vtpu
from vtpu.observe import MetricsSnapshot
from vtpu.progress import progress_bar, split_phext

from conftest import CLI_BUILT, NOT_BUILT

pytestmark = pytest.mark.skipif(not CLI_BUILT, reason=NOT_BUILT)


@pytest.fixture(scope="module")
def hc():
    """A client of its own sidecar serving HTTP on a free loopback port."""
    with vtpu.connect(http_port=0, timeout=10) as c:
        yield c


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read().decode("utf-8")


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_endpoint_parses_as_prometheus(hc):
    hc.cput("1.1.1/1.1.1/1.1.7", "p")
    hc.cget("1.1.1/1.1.1/1.1.7")
    with pytest.raises(vtpu.CoordinateError):
        hc.request("CGET", {"coord": "9.9.9"})  # raw, so the sidecar itself refuses it
    _get(f"{hc.http_url}/api/v2/select?c=1.1.1/1.1.1/1.1.7")
    status, ctype, text = _get(f"{hc.http_url}/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    fams = _families(text)
    # prometheus_client drops the _total suffix from counter family names.
    reqs = {s.labels["op"]: s.value for s in fams["vtpu_requests"].samples if s.name == "vtpu_requests_total"}
    assert reqs["CPUT"] >= 1 and reqs["CGET"] >= 1 and reqs["HTTP select"] >= 1
    errs = {s.labels["op"]: s.value for s in fams["vtpu_request_errors"].samples if s.name == "vtpu_request_errors_total"}
    assert errs["CGET"] >= 1
    hist = fams["vtpu_request_duration_seconds"]
    assert hist.type == "histogram"
    buckets = [s for s in hist.samples if s.name.endswith("_bucket") and s.labels["op"] == "CGET"]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts) and buckets[-1].labels["le"] == "+Inf"
    count = next(s.value for s in hist.samples if s.name.endswith("_count") and s.labels["op"] == "CGET")
    assert counts[-1] == count >= 1
    assert fams["vtpu_store_entries"].samples[0].value >= 1
    assert fams["vtpu_memory_rss_bytes"].samples[0].value > 0
    # The same text over ZeroMQ parses too.
    assert "vtpu_requests" in _families(hc.metrics("prometheus"))


def test_metrics_snapshot_counts_and_renders(hc):
    before = hc.metrics()
    n0 = before["ops"].get("CPUT", {}).get("count", 0)
    for i in range(20):
        hc.cput(f"1.1.1/1.1.1/1.2.{i + 1}", "x" * 100)
    snap = hc.metrics()
    assert isinstance(snap, MetricsSnapshot)
    assert snap["ops"]["CPUT"]["count"] == n0 + 20
    assert snap["ops"]["CPUT"]["bytes_in"] >= 20 * 100
    assert snap["store"]["entries"] >= 20
    html = snap._repr_html_()
    assert "<table>" in html and "CPUT" in html
    assert "dashboard" in hc._repr_html_() and hc.http_url in hc._repr_html_()
    with pytest.raises(vtpu.ParamError):
        hc.metrics("xml")
    assert hc.ping()["version"]  # still serving after the bad request


def test_dashboard_and_sq_checksum_match_phext_export(tmp_path):
    # A sidecar of its own with HTTP, so its default document holds only what we put there.
    sc = vtpu.Sidecar(["--http", "0"]).start()
    try:
        with vtpu.connect(sc.address, timeout=10, http_port=int(sc.http_url.rsplit(":", 1)[1])) as c:
            assert c.http_url == sc.http_url
            c.cput("1.1.1/1.1.1/1.1.1", "alpha")
            c.cput("1.2.1/1.1.1/1.1.3", "beta")
            _, _, via_http = _get(f"{c.http_url}/api/v2/checksum")
            assert via_http == c.save_phext(tmp_path / "x.phext")
            _, _, toc = _get(f"{c.http_url}/api/v2/toc")
            assert toc == "* 1.1.1/1.1.1/1.1.1: alpha\n* 1.2.1/1.1.1/1.1.3: beta\n"
            # A named document puts coordinates outside the phext range into the store: a full
            # export refuses them, an export of the unnamed document's range still works.
            _get(f"{c.http_url}/api/v2/update?p=named&c=1.1.1/1.1.1/1.1.1&s=elsewhere")
            with pytest.raises(vtpu.CoordinateError):
                c.save_phext(tmp_path / "all.phext")
            assert c.save_phext(tmp_path / "y.phext", "[1:1000].*.*/*.*.*/*.*.*") == via_http
            status, ctype, page = _get(f"{c.http_url}/")
            assert status == 200 and "text/html" in ctype and "<canvas" in page
            # offline: nothing fetched from elsewhere (the favicon is an inline data: URL)
            assert not re.search(r"https?://|src=|href=(?!\"data:)", page)
    finally:
        sc.stop()


def _random_phext(rng: random.Random, scrolls: int) -> bytes:
    breaks = [b"\x17"] * 12 + [b"\x18"] * 4 + [b"\x19", b"\x1a", b"\x1c", b"\x1d", b"\x1e", b"\x1f", b"\x01"]
    out = []
    for i in range(scrolls):
        out.append(f"scroll {i} ü {'x' * rng.randint(0, 40)}\nline".encode())
        out.append(b"".join(rng.choice(breaks) for _ in range(rng.randint(1, 3))))
    return b"".join(out)


def test_split_phext_imports_exactly_what_the_whole_file_does(fresh_sidecar, tmp_path):
    rng = random.Random(5)
    data = _random_phext(rng, 300)
    path = tmp_path / "big.phext"
    path.write_bytes(data)
    pieces = list(split_phext(data, 512))
    assert len(pieces) > 5 and sum(n for _, n in pieces) == len(data)
    with vtpu.connect(fresh_sidecar.address, timeout=10) as c:
        whole = c.load_phext(path)
        want = c.save_phext(tmp_path / "a.phext")
        c.cdel_batch(c.crange(values=False).coords)
        assert c.import_phext(path, chunk_bytes=512, progress=False) == whole
        assert c.save_phext(tmp_path / "b.phext") == want
        assert (tmp_path / "a.phext").read_bytes() == (tmp_path / "b.phext").read_bytes()
        c.cdel_batch(c.crange(values=False).coords)
        assert c.load_phext(path, progress=True) == whole  # the bar path of load_phext
    assert list(split_phext(b"no breaks at all", 1)) == [(b"no breaks at all", 16)]
    with pytest.raises(ValueError):
        list(split_phext(data, 0))


def test_upload_in_chunks_with_a_progress_bar(client, ns, capsys):
    n = 5000
    coords = np.zeros((n, 9), dtype=np.uint32)
    coords[:, 0] = ns
    coords[:, 8] = np.arange(n)
    values = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
    assert client.upload(coords, values, chunk=1000) == n
    err = capsys.readouterr().err
    assert "upload" in err and "5000/5000" in err  # tqdm (or the text bar) on stderr
    got = client.cget_batch(coords[[0, 4999]])
    np.testing.assert_array_equal(got.values, values[[0, 4999]])


def test_text_bar_without_tqdm(monkeypatch, capsys):
    import builtins

    real = builtins.__import__

    def no_tqdm(name, *a, **k):
        if name.startswith("tqdm"):
            raise ImportError("no tqdm here")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    with progress_bar(10, "work", "rows") as bar:
        bar.update(4)
        bar.update(6)
    assert "work: 100.0% 10/10 rows" in capsys.readouterr().err


def test_live_summary_updates_one_notebook_output(hc, monkeypatch):
    import sys
    import types

    shown, updates = [], []

    class Handle:
        def update(self, obj):
            updates.append(obj.data)

    display_mod = types.ModuleType("IPython.display")
    display_mod.HTML = type("HTML", (), {"__init__": lambda self, data: setattr(self, "data", data)})
    display_mod.display = lambda obj, display_id=False: (shown.append(obj.data), Handle())[1]
    monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))
    monkeypatch.setitem(sys.modules, "IPython.display", display_mod)
    snap = hc.live(seconds=0.25, every=0.05)
    assert len(shown) == 1 and len(updates) >= 2
    assert "<table>" in updates[-1] and isinstance(snap, MetricsSnapshot)
