"""The catalog: one module per metric, each registering its metric on import (``metrics.registry``).
Every module in this folder is imported when the package loads, so a new metric is one new file here."""

import importlib
import pkgutil

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_module.name}")
