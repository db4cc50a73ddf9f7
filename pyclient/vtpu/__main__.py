"""``python -m vtpu …`` and the ``vtpu`` console script: the sidecar's command line.

Runs ``node <sidecar>/bin/vtpu.js …`` with the Node.js and sidecar that ``vtpu.connect()``
would use (:func:`vtpu.launcher.find_node`, :func:`vtpu.launcher.find_cli`), e.g.
``python -m vtpu serve --address tcp://127.0.0.1:5555`` or ``vtpu phext checksum FILE``.
"""

from __future__ import annotations

import os
import sys

from .errors import SidecarError
from .launcher import find_cli, find_node


def main(argv: list[str] | None = None) -> int:
    """Replace this process with the sidecar CLI (exit code 2 with a message when it cannot start)."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        node, cli = find_node(), find_cli()
    except SidecarError as e:
        sys.stderr.write(f"vtpu: {e.message}\n")
        return 2
    sys.stdout.flush()
    # exec: signals (Ctrl-C, SIGTERM) and the exit code belong to the sidecar itself.
    os.execv(node, [node, str(cli), *args])
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
