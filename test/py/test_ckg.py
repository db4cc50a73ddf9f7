"""CKG through the sidecar: random graphs against networkx, the family example, staleness, errors."""

from __future__ import annotations

import random

import networkx as nx
import numpy as np
import pytest

import vtpu

RELS = (1, 2, 3)


def random_graph(ns: int, seed: int, nodes: int = 40, edges: int = 160) -> tuple[nx.MultiDiGraph, np.ndarray]:
    """A MultiDiGraph over two entity types (ns and ns + 10**6), edge key = relation, and its (E, 5) rows."""
    rng = random.Random(seed)
    types = (ns, ns + 1_000_000)
    g = nx.MultiDiGraph()
    rows = set()
    while len(rows) < edges:
        rows.add((rng.choice(types), rng.randrange(nodes), rng.choice(RELS), rng.choice(types), rng.randrange(nodes)))
    for st, si, r, dt, di in rows:
        g.add_edge((st, si), (dt, di), key=r)
    return g, np.array(sorted(rows, key=lambda x: rng.random()), dtype=np.int64)


def neighbours(g: nx.MultiDiGraph, u, hop) -> list:
    """(relation, node) one hop from u along `hop`: forward edges, then backward ones (negative
    ids, "~*"), each sorted by (relation, type, id) as CKG orders them."""
    items = hop if isinstance(hop, list) else [hop]
    fwd = lambda r: "*" in items or r in items  # noqa: E731
    back = lambda r: "~*" in items or -r in items  # noqa: E731
    out = sorted((r, v) for _, v, r in g.out_edges(u, keys=True) if fwd(r))
    return out + sorted((r, v) for v, _, r in g.in_edges(u, keys=True) if back(r))


def step(g: nx.MultiDiGraph, frontier: set, hop) -> set:
    """Successive neighbour sets: entities one hop along `hop`."""
    return {v for u in frontier for _, v in neighbours(g, u, hop)}


def walks(g: nx.MultiDiGraph, start, hops) -> list[list]:
    """Every path along `hops`, depth-first in CKG's edge order."""
    if not hops:
        return [[start]]
    return [[start] + w for _, v in neighbours(g, start, hops[0]) for w in walks(g, v, hops[1:])]


def pairs(a: np.ndarray) -> list[tuple[int, int]]:
    return [tuple(int(x) for x in row) for row in a]


@pytest.mark.parametrize("seed", [1, 2])
def test_paths_match_networkx(client: vtpu.Client, ns: int, seed: int) -> None:
    g, rows = random_graph(ns, seed)
    assert client.kg_put(rows) == len(rows)
    rng = random.Random(seed)
    nodes = sorted(g.nodes)
    starts = rng.sample(nodes, 12) + [(ns, 999)]  # the last does not exist
    for _ in range(8):
        hops = [rng.choice([1, 2, 3, [1, 3], "*", -2, "~*", [2, -3]]) for _ in range(rng.randint(1, 4))]
        got = client.ckg_path(starts, hops)
        for s, ends in zip(starts, got):
            want = {s}
            for h in hops:
                want = step(g, want, h)
            assert pairs(ends) == sorted(want), (s, hops)
        s = rng.choice(nodes)
        paths = client.ckg_path(s, hops[:3], paths=True)
        assert [pairs(p) for p in paths] == walks(g, s, hops[:3])


@pytest.mark.parametrize("seed", [3, 4])
def test_bfs_matches_networkx(client: vtpu.Client, ns: int, seed: int) -> None:
    g, rows = random_graph(ns, seed)
    client.kg_put(rows)
    rng = random.Random(seed)
    simple = nx.DiGraph(g)
    for s in rng.sample(sorted(g.nodes), 6):
        for depth, rels in ((0, None), (1, None), (3, [1, 2]), (64, None), (2, ["*", "~*"]), (3, [-1, 2])):
            tree = client.ckg_bfs(s, depth, relations=rels)
            items = ["*"] if rels is None else rels
            sub = nx.DiGraph([(u, v) for u, v, r in g.edges(keys=True) if "*" in items or r in items])
            sub.add_edges_from((v, u) for u, v, r in g.edges(keys=True) if "~*" in items or -r in items)
            sub.add_node(s)
            want = nx.single_source_shortest_path_length(sub, s, cutoff=depth)
            got = dict(zip(pairs(tree.nodes), tree.depth.tolist()))
            assert got == want and len(got) == len(tree.nodes)
            assert not tree.truncated and tree.parent[0] == -1 and tree.relation[0] == 0
            assert np.all(np.diff(tree.depth) >= 0)  # level by level
            for i in range(1, len(tree.nodes)):
                u, v = pairs(tree.nodes[[tree.parent[i], i]])
                r = int(tree.relation[i])
                assert tree.depth[tree.parent[i]] == tree.depth[i] - 1
                assert g.has_edge(u, v, key=r) if r > 0 else g.has_edge(v, u, key=-r)
            if depth == 64:
                layers = [sorted(x) for x in nx.bfs_layers(sub, [s])]
                assert [sorted(pairs(tree.nodes[tree.depth == d])) for d in range(len(layers))] == layers
        if len(client.ckg_bfs(s, 64).nodes) > 2:
            cut = client.ckg_bfs(s, 64, max_nodes=2)
            assert cut.truncated and len(cut.nodes) == 2
    seeds = rng.sample(sorted(g.nodes), 3)
    multi = client.ckg_bfs(seeds, 2, multi_source=True)
    want = nx.multi_source_dijkstra_path_length(simple, seeds, cutoff=2)  # unit weights: hop counts
    assert dict(zip(pairs(multi.nodes), multi.depth.tolist())) == want


FAMILY = vtpu.KgSchema(types=["person"], relations=["father", "sister", "husband", "spouse"], attrs=["name"])
PEOPLE = ["Alice", "Bob", "Carol", "David", "Emily"]


def test_family_example_and_program(client: vtpu.Client, ns: int) -> None:
    kg = vtpu.KgSchema(types={"person": ns}, relations=FAMILY.relations, attrs=["name"])
    edges = [("person", 1001, "father", "person", 1002), ("person", 1002, "sister", "person", 1003),
             ("person", 1003, "husband", "person", 1004), ("person", 1004, "spouse", "person", 1005)]
    client.kg_put(edges, schema=kg)
    ids = np.arange(1001, 1006)
    coords = kg.layout.coords(type="person", id=ids, attr="name", relation=0, target_type=0, target_id=0)
    client.cput_batch(coords, PEOPLE)
    path = ["father", "sister", "husband", "spouse"]
    assert pairs(client.ckg_path(("person", 1001), path, schema=kg)) == [(ns, 1005)]
    back = ["~spouse", "~husband", "~sister", "~father"]
    assert pairs(client.ckg_path(("person", 1005), back, schema=kg)) == [(ns, 1001)]
    tree = client.ckg_bfs(("person", 1003), 1, relations=["*", "~*"], schema=kg)
    assert pairs(tree.nodes) == [(ns, 1003), (ns, 1004), (ns, 1002)] and tree.relation.tolist() == [0, 3, -2]
    p = vtpu.Program()
    p.cget(p.ckg([("person", 1001), ("person", 1002)], "path", path=path[1:], attr="name", schema=kg))
    values, found = client.run_program(p).last
    assert list(values) == ["Emily"] and found.all()
    p = vtpu.Program()
    p.cget(p.ckg([("person", 1001)], "bfs", depth=4, attr="name", schema=kg))
    assert list(client.run_program(p).last.values) == PEOPLE
    with pytest.raises(vtpu.ParamError, match="fathr"):
        client.ckg_path(("person", 1001), ["fathr"], schema=kg)
    with pytest.raises(vtpu.ParamError, match="robot"):
        client.kg_put([("robot", 1, "father", "person", 2)], schema=kg)


def test_writes_and_deletes_are_seen(client: vtpu.Client, ns: int) -> None:
    chain = np.array([(ns, i, 1, ns, i + 1) for i in range(10)], np.int64)
    client.kg_put(chain)
    assert len(client.ckg_bfs((ns, 0), 100).nodes) == 11
    assert client.kg_delete(chain[5:6]) == 1
    assert pairs(client.ckg_bfs((ns, 0), 100).nodes) == [(ns, i) for i in range(6)]
    assert pairs(client.ckg_path((ns, 4), [1, 1])) == []
    client.kg_put([(ns, 5, 2, ns, 6)])
    assert pairs(client.ckg_path((ns, 4), [1, 2])) == [(ns, 6)]
    assert pairs(client.ckg_path((ns, 4), [1, 1])) == []
    client.cdel_batch(client.crange(f"{ns}.*.*/*.*.*/*.*.*", values=False).coords)
    assert len(client.ckg_bfs((ns, 0), 100).nodes) == 0  # no longer exists


def test_errors_are_typed_and_the_sidecar_keeps_serving(client: vtpu.Client, ns: int) -> None:
    client.kg_put([(ns, 1, 1, ns, 2)])
    with pytest.raises(vtpu.ParamError, match="1..2"):
        client.kg_put([(ns, 1, 0, ns, 2)])  # relation 0 is the attribute space
    with pytest.raises(vtpu.ParamError, match="'father'.*schema"):
        client.ckg_path((ns, 1), ["father"])  # names need a schema
    with pytest.raises(vtpu.ParamError, match="2147483647"):
        client.kg_put([(ns, 1, 2**31, ns, 2)])
    with pytest.raises(vtpu.ParamError):
        client.ckg_path((ns, 1), [])
    for depth in (-1, 65536):
        with pytest.raises(vtpu.ParamError, match="depth"):
            client.ckg_bfs((ns, 1), depth)
    with pytest.raises(vtpu.ParamError, match="limit"):
        client.ckg_bfs((ns, 1), 1, max_nodes=0)
    with pytest.raises(vtpu.ParamError, match="mode"):
        client.request("CKG", {"mode": "dfs", "start": f"{ns}.1.0/0.0.0/0.0.0"})
    with pytest.raises(vtpu.ParamError, match="path"):
        client.request("CKG", {"mode": "path", "start": f"{ns}.1.0/0.0.0/0.0.0", "path": [0]})
    with pytest.raises(vtpu.CoordinateError):
        client.request("CKG", {"mode": "path", "start": "1.2.3/4", "path": [1]})
    assert client.ping()["version"] == 1
    assert pairs(client.ckg_path((ns, 1), [1])) == [(ns, 2)]
    assert pairs(client.ckg_path((ns, 1), [7])) == []  # a relation without edges is empty


def test_async_client_has_the_kg_calls(sidecar: vtpu.Sidecar, ns: int) -> None:
    import asyncio

    async def main() -> list:
        async with await vtpu.connect_async(sidecar.address) as vt:
            await vt.kg_put([(ns, 1, 1, ns, 2), (ns, 2, 1, ns, 3)])
            return [await vt.ckg_path((ns, 1), [1, 1]), (await vt.ckg_bfs((ns, 1), 5)).depth]

    ends, depth = asyncio.run(main())
    assert pairs(ends) == [(ns, 3)] and depth.tolist() == [0, 1, 2]


def test_schema_names_and_checks() -> None:
    kg = vtpu.KgSchema(relations=["father", "sister"], types={"person": 0, "city": 7}, attrs=["name", "born"])
    assert (kg.relation("sister"), kg.type("city"), kg.attr("born"), kg.relation(9)) == (2, 7, 2, 9)
    assert (kg.relation_name(1), kg.relation_name(5), kg.type_name(7)) == ("father", 5, "city")
    assert vtpu.format_coord(kg.layout.coord(type="city", id=3, attr=0, relation="father", target_type="person", target_id=4)) \
        == "7.3.0/1.0.4/0.0.0"
    for bad in (lambda: vtpu.KgSchema(relations=["a", "a"]), lambda: vtpu.KgSchema(relations={"a": 0}),
                lambda: vtpu.KgSchema(relations="father"), lambda: kg.relation(0), lambda: kg.relation("uncle"),
                lambda: kg.type(-1), lambda: kg.relation(True)):
        with pytest.raises(vtpu.ParamError):
            bad()
    with pytest.raises(vtpu.ParamError, match="5 values"):
        vtpu.kg.edge_coords([(1, 2, 3)])
    with pytest.raises(vtpu.ParamError, match="N, 5"):
        vtpu.kg.edge_coords(np.zeros((3, 4), np.int64))
    with pytest.raises(vtpu.ParamError, match="2\\*\\*32"):
        vtpu.kg.edge_coords(np.array([[1, 2**32, 1, 1, 1]]))
