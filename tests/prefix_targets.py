"""Each scored query's target keys under a registered key-sum metric (the n-prefix tests read them)."""

from induction_nb.metrics import REGISTRY, Queries


def targets(name, tokens):
    """``{(b, q): [k, ...]}``: each scored query's keys under the registered metric ``name``."""
    b, q, k = REGISTRY[name].pairs(Queries(tokens))
    out = {}
    for key, kk in zip(zip(b.tolist(), q.tolist()), k.tolist()):
        out.setdefault(key, []).append(kk)
    return out
