"""The launcher checks ``vtpu serve`` arguments by the table the sidecar parses with (cli.json)."""

from __future__ import annotations

import json
import subprocess

import pytest

import vtpu
from vtpu.serve_flags import SERVE_FLAGS, check_serve_args

from conftest import CLI_BUILT, NOT_BUILT, REPO

CASES = [
    [],
    ["--threads", "2"],
    ["--threads=2", "--max-batch", "10"],
    ["--threads", "0"],
    ["--threads", "x"],
    ["--threads"],
    ["--thread", "2"],
    ["--exit-with-stdin"],
    ["--exit-with-stdin=1"],
    ["--http", "0"],
    ["--http", "65536"],
    ["--http-host", "h"],
    ["--http", "0", "--http-host", "h"],
    ["--data", "d", "--fsync", "always", "--snapshot-every", "10s"],
    ["--data", "d", "--fsync", "0"],
    ["--data", "d", "--snapshot-every", "10m"],
    ["--fsync", "5"],
    ["--sync-peer", "ipc:///x"],
    ["--sync-peer", "ipc:///x", "--sync-every", "0.5", "--sync-pattern", "*.*.*/*.*.*/*.*.*"],
    ["--sync-peer", "ipc:///x", "--sync-every", "0", "--sync-pattern", "*.*.*/*.*.*/*.*.*"],
    ["--owner", "nobody"],
    ["--owner", "a=1.*.*/*.*.*/*.*.*", "--owns", "2.*.*/*.*.*/*.*.*", "--agent", "a"],
    ["--address", ""],
    ["stray"],
]


def _accepted_by_python(args: list[str]) -> bool:
    try:
        check_serve_args(args)
        return True
    except vtpu.ParamError:
        return False


@pytest.mark.skipif(not CLI_BUILT, reason=NOT_BUILT)
def test_python_and_the_sidecar_agree_on_every_case():
    script = (
        "const {parseServeFlags} = require('./dist/bridge/cli.js');"
        "const cases = JSON.parse(process.argv[1]);"
        "console.log(JSON.stringify(cases.map((a) => { try { parseServeFlags(a, {}); return true; } catch (e) { return false; } })));"
    )
    out = subprocess.run(["node", "-e", script, json.dumps(CASES)], cwd=REPO, capture_output=True, text=True, check=True)
    node = json.loads(out.stdout)
    python = [_accepted_by_python(a) for a in CASES]
    assert python == node, [(c, p, n) for c, p, n in zip(CASES, python, node) if p != n]
    assert any(node) and not all(node)


def test_a_typo_in_sidecar_args_is_a_param_error_before_any_start():
    with pytest.raises(vtpu.ParamError, match="unknown vtpu serve flag '--thread'"):
        vtpu.Sidecar(["--thread", "2"])
    with pytest.raises(vtpu.ParamError, match="--threads must be a positive integer"):
        vtpu.connect(sidecar_args=["--threads", "0"])


def test_the_launchers_own_flags_are_in_the_table():
    for flag in ("--address", "--exit-with-stdin", "--http", "--data", "--fsync", "--snapshot-every"):
        assert flag in SERVE_FLAGS
