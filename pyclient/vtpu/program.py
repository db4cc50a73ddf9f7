"""Programs: several instructions in one round trip, later steps reading earlier ones.

>>> p = Program()
>>> hits = p.crange("0.*.*/1.*.*/*.*.*", values=False)   # step 0: coordinates only
>>> nxt = p.cdelta(hits, offset=[0, 0, 1, 0, 0, 0, 0, 0, 0])  # step 1: shift them
>>> p.cget(nxt)                                            # step 2: fetch the values
>>> values, found = client.run_program(p).last
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, NamedTuple

from .arrow import encode_coords, encode_scrolls
from .coords import DIMS, format_coord, pattern_string
from .errors import ParamError
from .kg import KgSchema, hops_param, relations_param, start_coords
from .protocol import OPS

__all__ = ["Ref", "Program", "ProgramResult"]


class Ref(NamedTuple):
    """The output body of step ``step`` (or, with ``field``, a field of its result)."""

    step: int
    field: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The wire form, ``{"$ref": k}`` (plus ``"field"``)."""
        return {"$ref": self.step} if self.field is None else {"$ref": self.step, "field": self.field}


class ProgramResult(NamedTuple):
    """``results``: every step's result object; ``bodies``: decoded bodies of returned steps."""

    results: list[dict[str, Any]]
    bodies: list[Any]

    @property
    def last(self) -> Any:
        """The last returned body (the usual single output)."""
        if not self.bodies:
            raise ParamError("E_PARAM", "the program returned no body")
        return self.bodies[-1]


def _jsonable(v: Any) -> Any:
    if isinstance(v, Ref):
        return v.to_json()
    if isinstance(v, Mapping):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "tolist"):
        return v.tolist()
    return v


class Program:
    """A builder for ``Client.run_program``; each method appends a step and returns a :class:`Ref`.

    A step's input body is a :class:`Ref` to an earlier step or literal data (coordinates,
    or ``(coords, values)`` for ``cput``), which travels as an extra body frame.
    """

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.bodies: list[Any] = []
        self.returns: list[int] | None = None

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, op: str, params: Mapping[str, Any] | None = None, body: Any = None) -> Ref:
        """Append a raw step; ``params["body"]`` may also carry the body."""
        if op not in OPS or op == "PROGRAM":
            raise ParamError("E_PARAM", f"unknown or nested program op {op!r}")
        p = dict(params or {})
        if body is None and "body" in p and p["body"] is not True:
            body = p.pop("body")
        if isinstance(body, dict) and "$ref" in body:
            body = Ref(int(body["$ref"]), body.get("field"))
        if isinstance(body, Ref):
            if not 0 <= body.step < len(self.steps):
                raise ParamError("E_PARAM", f"step {len(self.steps)} refers to step {body.step}, which is not earlier")
            p.setdefault("batch", True)
            p["body"] = body.to_json()
        elif body is not None:
            if op == "CPUT":
                try:
                    coords, values = body
                except (TypeError, ValueError):
                    raise ParamError("E_PARAM", "a CPUT body is (coords, values)") from None
                self.bodies.append(encode_scrolls(coords, values))
            else:
                self.bodies.append(encode_coords(body))
            p.setdefault("batch", True)
            p["body"] = True
        for k in ("coord",):
            if k in p and not isinstance(p[k], str):
                p[k] = format_coord(p[k])
        if "pattern" in p:
            p["pattern"] = pattern_string(p["pattern"])
        self.steps.append({"op": op, "params": _jsonable(p)})
        return Ref(len(self.steps) - 1)

    def crange(self, pattern: Any, limit: int | None = None, values: bool = True) -> Ref:
        """CRANGE: coordinates (and values) matching ``pattern``."""
        p: dict[str, Any] = {"pattern": pattern, "values": bool(values)}
        if limit is not None:
            p["limit"] = int(limit)
        return self.add("CRANGE", p)

    def cdelta(self, src: Any, offset: Iterable[int], fetch: bool = False) -> Ref:
        """CDELTA over a batch: ``src`` shifted by ``offset`` (nine signed ints)."""
        off = [int(x) for x in offset]
        if len(off) != DIMS:
            raise ParamError("E_PARAM", f"an offset has 9 components, got {len(off)}")
        return self.add("CDELTA", {"offset": off, "fetch": bool(fetch)}, body=src)

    def cget(self, src: Any) -> Ref:
        """CGET over a batch of coordinates."""
        return self.add("CGET", {}, body=src)

    def cput(self, coords: Any, values: Any) -> Ref:
        """CPUT of a literal batch."""
        return self.add("CPUT", {}, body=(coords, values))

    def cdel(self, src: Any) -> Ref:
        """CDEL over a batch."""
        return self.add("CDEL", {}, body=src)

    def croute(self, src: Any) -> Ref:
        """CROUTE over a batch."""
        return self.add("CROUTE", {}, body=src)

    def ckg(self, src: Any, mode: str, *, path: Any = None, paths: bool = False, depth: int | None = None,
            relations: Any = None, multi_source: bool = False, limit: int | None = None, attr: Any = 0,
            schema: KgSchema | None = None) -> Ref:
        """CKG over a batch of starts (a :class:`Ref` — e.g. a CRANGE of entity rows — or
        ``(type, id)`` pairs), ``mode`` ``"path"`` or ``"bfs"``. Its body is one
        ``type.id.attr/0.0.0/0.0.0`` coordinate per result (``attr`` a name or id), ready for
        :meth:`cget`. ``path``, ``paths``, ``depth``, ``relations``, ``multi_source`` and
        ``limit`` as in :meth:`vtpu.Client.ckg_path` and :meth:`vtpu.Client.ckg_bfs`
        (``limit`` is their ``max_nodes`` for bfs); names resolve through ``schema``."""
        s = schema or KgSchema()
        p: dict[str, Any] = {"mode": mode, "attr": s.attr(attr)}
        if paths:
            p["paths"] = True
        if multi_source:
            p["multi_source"] = True
        if path is not None:
            p["path"] = hops_param(path, schema)
        if depth is not None:
            p["depth"] = int(depth)
        if relations is not None:
            p["relations"] = relations_param(relations, schema)
        if limit is not None:
            p["limit"] = int(limit)
        body = src if isinstance(src, Ref) else start_coords(src, schema)[0]
        return self.add("CKG", p, body=body)

    def returning(self, *steps: int | Ref) -> "Program":
        """Ask for the bodies of these steps (default: the last step's)."""
        self.returns = [s.step if isinstance(s, Ref) else int(s) for s in steps]
        return self

    def to_wire(self) -> tuple[dict[str, Any], list[Any]]:
        """``(params, bodies)`` of the PROGRAM request."""
        if not self.steps:
            raise ParamError("E_PARAM", "an empty program")
        params: dict[str, Any] = {"steps": self.steps}
        if self.returns is not None:
            params["return"] = list(self.returns)
        return params, list(self.bodies)

    @classmethod
    def from_steps(cls, steps: Iterable[Any]) -> "Program":
        """Build from ``(op, params)`` pairs or ``{"op", "params"}`` dicts."""
        prog = cls()
        for s in steps:
            if isinstance(s, Mapping):
                prog.add(s["op"], s.get("params"), s.get("body"))
            else:
                op, *rest = s
                prog.add(op, rest[0] if rest else None, rest[1] if len(rest) > 1 else None)
        return prog
