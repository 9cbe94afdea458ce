"""kubernetes_asyncio's ApiClient without its generated models.

Importing `kubernetes_asyncio.client` imports every generated model and API class of the
Kubernetes API: about 39 MB of the operator's memory before the first TradingBot, 40 % of
what it uses idle. The operator sends and reads plain dicts, so it needs four modules of the
library: configuration, exceptions, rest and api_client. `load()` puts the library's packages
in place as namespaces over their own directories, without running their `__init__` (which
imports everything), so that only those modules load. Kopf then finds no model classes in
`kubernetes_asyncio.client`, which it only uses to recognise such objects passed to its
adopt/label helpers (the operator passes dicts).

If the full library is imported already (a test process that imported it first), it is
used as it is.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

PACKAGES = ("kubernetes_asyncio", "kubernetes_asyncio.client", "kubernetes_asyncio.client.models")


def load() -> None:
    """Make `kubernetes_asyncio.client.api_client` importable without the models (once)."""
    if PACKAGES[0] in sys.modules:
        return
    spec = importlib.util.find_spec(PACKAGES[0])  # top level: found, not executed
    if spec is None or not spec.submodule_search_locations:
        return  # not installed: the import in kube.py says so
    root = Path(next(iter(spec.submodule_search_locations)))
    for name in PACKAGES:
        package = types.ModuleType(name, "the package without its eager imports")
        package.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
        package.__package__ = name
        sys.modules[name] = package
