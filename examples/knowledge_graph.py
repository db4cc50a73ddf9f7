"""vTPU knowledge graph: entities and relations at coordinates, multi-hop queries in one round trip.

"Who is the spouse of Alice's father's sister's husband?" — then a dependency tree walked by BFS.
Run from a built checkout (`make`): python examples/knowledge_graph.py
"""

import numpy as np

import vtpu

kg = vtpu.KgSchema(types=["person", "package"], relations=["father", "sister", "husband", "spouse", "depends_on"],
                   attrs=["name"])
people = {1001: "Alice", 1002: "Bob", 1003: "Carol", 1004: "David", 1005: "Emily"}

with vtpu.connect() as client:  # starts a private local sidecar; closed at the end
    # Edges go to type.id.0/relation.target_type.target_id/0.0.0, names to type.id.name/0.0.0/0.0.0.
    client.kg_put([("person", 1001, "father", "person", 1002), ("person", 1002, "sister", "person", 1003),
                   ("person", 1003, "husband", "person", 1004), ("person", 1004, "spouse", "person", 1005)], schema=kg)
    ids = np.array(list(people))
    client.cput_batch(kg.layout.coords(type="person", id=ids, attr="name", relation=0, target_type=0, target_id=0),
                      list(people.values()))

    path = ["father", "sister", "husband", "spouse"]
    ends = client.ckg_path(("person", 1001), path, schema=kg)
    print("Alice's", " → ".join(path), "→", [(kg.type_name(t), int(i)) for t, i in ends])

    # Backwards ("~"): from Bob to whoever has him as father.
    print("Bob's children:", [int(i) for _, i in client.ckg_path(("person", 1002), ["~father"], schema=kg)])

    # The same question answered with names, in one round trip: CKG feeds a CGET of the name attribute.
    p = vtpu.Program()
    p.cget(p.ckg([("person", 1001)], "path", path=path, attr="name", schema=kg))
    print("by name:", list(client.run_program(p).last.values))

    # A small dependency tree: package 0 depends on 1 and 2, 1 on 3 and 4, 2 on 5.
    client.kg_put([("package", a, "depends_on", "package", b) for a, b in [(0, 1), (0, 2), (1, 3), (1, 4), (2, 5)]], schema=kg)
    tree = client.ckg_bfs(("package", 0), depth=10, relations="depends_on", schema=kg)
    for (_, node), d, parent in zip(tree.nodes, tree.depth, tree.parent):
        print("  " * int(d) + f"package {node}" + (f" (needed by {tree.nodes[parent][1]})" if parent >= 0 else ""))
