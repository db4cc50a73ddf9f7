"""``vtpu serve`` arguments, built and checked by the flag table the sidecar parses with.

``cli.json`` (shipped in this package; ``bridge/cli.ts`` imports it) lists every flag, its
value rule and its help. Checking arguments here turns a typo in ``sidecar_args`` into a
``ParamError`` at once instead of a sidecar that exits during start-up.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any, Iterable

from .errors import ParamError

__all__ = ["TABLE", "SERVE_FLAGS", "check_value", "check_serve_args", "serve_flag"]

#: The parsed ``cli.json``.
TABLE: dict[str, Any] = json.loads(resources.files(__package__).joinpath("cli.json").read_text(encoding="utf-8"))
#: ``vtpu serve`` flags: name -> spec (``value``, ``type``, ``to``, ``needs``, ``about``).
SERVE_FLAGS: dict[str, dict[str, Any]] = TABLE["commands"]["serve"]["flags"]


def serve_flag(name: str) -> str:
    """``name`` after checking the table has it (so a renamed flag fails loudly here)."""
    if name not in SERVE_FLAGS:
        raise KeyError(f"cli.json has no serve flag {name}")
    return name


def check_value(flag: str, value: str, what: str | None = None) -> str:
    """Check one value against its flag's rule in the table; returns it.

    Parameters
    ----------
    flag : str
        A ``vtpu serve`` flag that takes a value.
    value : str
        The value as it will be passed.
    what : str, optional
        The name to blame in the message (a Python parameter name); default the flag.

    Raises
    ------
    ParamError
        When the value breaks the flag's rule.
    """
    rule = TABLE["types"][SERVE_FLAGS[flag]["type"]]
    ok = re.search(rule["regex"], value) is not None
    if ok and any(k in rule for k in ("min", "max", "above")):
        n = float(value)
        ok = not (("min" in rule and n < rule["min"]) or ("max" in rule and n > rule["max"]) or ("above" in rule and not n > rule["above"]))
    if not ok:
        raise ParamError("E_PARAM", f"{what or flag} must be {rule['expect']}, got {value!r}")
    return value


def check_serve_args(args: Iterable[Any]) -> list[str]:
    """Check ``vtpu serve`` arguments (``--flag value`` or ``--flag=value``); returns them as str.

    Raises
    ------
    ParamError
        For an unknown flag, a missing or bad value, or a flag without the one it needs.
    """
    out = [str(a) for a in args]
    seen: set[str] = set()
    i = 0
    while i < len(out):
        arg = out[i]
        flag, eq, inline = arg.partition("=")
        spec = SERVE_FLAGS.get(flag)
        if spec is None:
            raise ParamError("E_PARAM", f"unknown vtpu serve flag {arg!r}; see `vtpu serve --help`")
        if "value" not in spec:
            if eq:
                raise ParamError("E_PARAM", f"{flag} takes no value")
        elif eq:
            check_value(flag, inline)
        elif i + 1 < len(out):
            i += 1
            check_value(flag, out[i])
        else:
            raise ParamError("E_PARAM", f"{flag} needs a value ({spec['value']})")
        seen.add(flag)
        i += 1
    for flag in seen:
        need = SERVE_FLAGS[flag].get("needs")
        if need and need not in seen:
            raise ParamError("E_PARAM", f"{flag} needs {need}")
    return out
