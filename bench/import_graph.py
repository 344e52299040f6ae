"""The package's import graph, measured: modules, import edges (imports inside functions counted), the
height of the graph in layers, import cycles, and imports that run against the group order of the layers
contract in pyproject.toml (``[tool.importlinter]``). The contract itself is checked by ``lint-imports``
(tests/test_floor_plan.py); this prints the numbers behind it.

    python bench/import_graph.py                      # this checkout
    python bench/import_graph.py --root /other/checkout --groups groups.json   # e.g. an older, flat layout

The flat layout before the floor plan (commit 42d66d9), measured with the groups its modules moved to:

    git worktree add /tmp/flat 42d66d9
    python bench/import_graph.py --root /tmp/flat --groups bench/flat_layout_groups.json

``--groups``: a JSON ``{module: group}`` for a layout whose modules are not in group folders.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import grimp

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _order(pyproject: Path) -> list[set[str]]:
    """The layers contract's groups, top first, as sets of group names (``a | b``: one layer)."""
    config = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]
    layers = next(c["layers"] for c in config["contracts"] if c["type"] == "layers")
    return [{part.strip().removeprefix("induction_nb.") for part in layer.split("|")} for layer in layers]


def _cycles(modules: list[str], succ: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(sorted(succ[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(succ[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def _layers(modules: list[str], succ: dict[str, set[str]], cycles: list[list[str]]) -> int:
    """The height of the graph with each cycle taken as one node."""
    node = {m: m for m in modules} | {m: c[0] for c in cycles for m in c}
    deps: dict[str, set[str]] = defaultdict(set)
    for a in modules:
        deps[node[a]] |= {node[b] for b in succ[a]} - {node[a]}
    height: dict[str, int] = {}

    def h(n: str) -> int:
        if n not in height:
            height[n] = 1 + max((h(d) for d in deps[n]), default=0)
        return height[n]

    sys.setrecursionlimit(10000)
    return max(h(n) for n in set(node.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="a checkout of the project (default: this one)")
    parser.add_argument("--groups", type=Path, help="JSON {module: group} for a flat layout")
    args = parser.parse_args()
    sys.path.insert(0, str(args.root))
    graph = grimp.build_graph("induction_nb", exclude_type_checking_imports=True, cache_dir=None)
    modules = sorted(m for m in graph.modules)
    succ = {m: set(graph.find_modules_directly_imported_by(m)) for m in modules}
    edges = sum(len(s) for s in succ.values())
    cycles = _cycles(modules, succ)
    order = _order(ROOT / "pyproject.toml")
    named = json.loads(args.groups.read_text()) if args.groups else {}

    def group(m: str) -> str | None:
        """The group (top-level unit) of module ``m``: its subpackage, or itself at the top."""
        parts = m.split(".")
        if named:
            return named.get(parts[-1]) if len(parts) == 2 else None
        return parts[1] if len(parts) > 1 else None

    rank = {g: i for i, layer in enumerate(order) for g in layer}
    against = [
        (a, b)
        for a in modules
        for b in succ[a]
        if group(a) in rank and group(b) in rank and rank[group(b)] < rank[group(a)]
    ]
    print(
        f"modules: {len(modules)}  import edges: {edges}  layers: {_layers(modules, succ, cycles)}  "
        f"cycles: {len(cycles)}  imports against the group order: {len(against)}"
    )
    units = sorted({group(m) or m for m in modules})
    between = {u: {group(b) or b for a in modules if (group(a) or a) == u for b in succ[a]} - {u} for u in units}
    unit_cycles = _cycles(units, between)
    print(
        f"top level: {len(units)} units  {sum(map(len, between.values()))} edges  "
        f"{_layers(units, between, unit_cycles)} layers  {len(unit_cycles)} cycles"
    )
    for c in cycles:
        print("  cycle:", " <-> ".join(c))
    for a, b in against:
        print("  against the order:", a, "->", b)


if __name__ == "__main__":
    main()
