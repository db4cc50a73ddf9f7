"""``protocol.json``, parsed once: the data every other module of the package reads it
from (this module imports nothing of the package, so none of them import each other in a
circle to reach it).

The file lives at the checkout's top, ``protocol/protocol.json``, where the TypeScript
engine reads it too; ``vtpu/protocol.json`` is a link to it, which a wheel carries as a copy."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

#: The parsed ``protocol.json``.
SCHEMA: dict[str, Any] = json.loads(resources.files(__package__).joinpath("protocol.json").read_text(encoding="utf-8"))
