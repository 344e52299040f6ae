"""Every public name has a docstring in one style (Google: ``Args``/``Returns``/``Raises``/``Attributes``),
read by the same parser the documentation site uses (griffe, via mkdocstrings), so what passes here is what
the API pages show. The rules, per kind of name:

- a function: every parameter of its signature in ``Args`` (and nothing else), a ``Returns`` section, a
  ``Raises`` section and an ``Examples`` section;
- a class a user constructs (it has ``__init__`` parameters and is no result type): every parameter in
  ``Args``, and ``Examples``;
- a result type (a dataclass): every field in ``Attributes``;
- an error: what raises it and how to fix it (checked by length: the errors page renders these);
- a constant: a docstring.
"""

from __future__ import annotations

import builtins
import dataclasses
import inspect

import pytest

import induction_nb
import induction_nb.errors

griffe = pytest.importorskip("griffe")
from docs.public_names import griffe_object  # noqa: E402

K = griffe.DocstringSectionKind


def _sections(gobj):
    if gobj.docstring is None:
        return {}
    return {s.kind: s for s in gobj.docstring.parse("google", warnings=False)}


def _names(section):
    return [p.name for p in section.value] if section is not None else []


def _signature_names(fn):
    out = []
    for p in inspect.signature(fn).parameters.values():
        if p.name in ("self", "cls"):
            continue
        out.append({p.VAR_POSITIONAL: f"*{p.name}", p.VAR_KEYWORD: f"**{p.name}"}.get(p.kind, p.name))
    return out


def _documented(section):
    return [n.lstrip("*") for n in _names(section)]


PUBLIC = sorted(induction_nb.__all__)


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_docstring(name):
    obj = getattr(induction_nb, name)
    gobj = griffe_object(name)
    assert gobj.docstring is not None and gobj.docstring.value.strip(), f"{name} has no docstring"
    s = _sections(gobj)
    if isinstance(obj, type) and issubclass(obj, Exception):
        assert len(gobj.docstring.value) >= 200, f"{name}: say what raises it and how to fix it"
        return
    if inspect.isclass(obj):
        if dataclasses.is_dataclass(obj) and obj.__name__ not in CONSTRUCTED:
            fields = [f.name for f in dataclasses.fields(obj) if not f.name.startswith("_")]
            documented = set(_documented(s.get(K.attributes)))
            missing = sorted(set(fields) - documented)
            assert not missing, f"{name}: Attributes section lacks {missing}"
            unknown = sorted(a for a in documented if a not in fields and not hasattr(obj, a))
            assert not unknown, f"{name}: Attributes names what the class does not have: {unknown}"
            _check_raises(name, s)
            return
        params = [n.lstrip("*") for n in _signature_names(obj)]
        documented = _documented(s.get(K.parameters))
        assert sorted(documented) == sorted(params), f"{name}: Args {documented} != __init__ {params}"
        _check_raises(name, s)
        assert K.examples in s, f"{name}: no Examples section"
        return
    if not callable(obj):
        return  # a constant: its docstring is enough
    params = [n.lstrip("*") for n in _signature_names(obj)]
    documented = _documented(s.get(K.parameters))
    assert sorted(documented) == sorted(params), f"{name}: Args {documented} != signature {params}"
    assert K.returns in s, f"{name}: no Returns section"
    assert K.raises in s, f"{name}: no Raises section"
    _check_raises(name, s)
    assert K.examples in s, f"{name}: no Examples section"


def _check_raises(name, sections):
    """Every exception a Raises section names is a real exception class (ours or a builtin)."""
    raises = sections.get(K.raises)
    for item in raises.value if raises is not None else ():
        names = str(item.annotation).replace(" ", "").split("|")
        for exc in names:
            cls = getattr(induction_nb.errors, exc, None) or getattr(builtins, exc, None)
            assert isinstance(cls, type) and issubclass(cls, BaseException), f"{name}: Raises names {exc!r}"


# dataclasses a user builds by hand (their fields are constructor arguments, documented as Args)
CONSTRUCTED = {"CustomSites", "Site", "RemoteConfig", "FewShotTask", "Pattern"}
