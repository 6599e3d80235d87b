"""The papers' figures (one module each, registered by id) and the default study.

Each module is a composition of the library: a study (sweep config) per scale, a drawing made
by a genmeasures.plots function, and the paper's claim checked on the plotted numbers. Every
module in this package is imported here, so a new figure only needs its own file.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
