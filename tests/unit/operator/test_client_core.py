"""The operator process loads kubernetes_asyncio's ApiClient, not its ~700 generated models
(about 39 MB): a fresh interpreter, as `novapulse-operator run` starts."""

from __future__ import annotations

import ast
import subprocess
import sys

PROBE = """
import sys
import novapulse_operator.cli, novapulse_operator.kube, kopf
from kopf._cogs.helpers import thirdparty
print(sorted(m for m in sys.modules if m.startswith("kubernetes_asyncio")))
print(thirdparty.V1ObjectMetaAsync is None)
"""


def test_the_api_client_loads_without_the_generated_models() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          check=True, timeout=120)
    modules, kopf_sees_no_models = done.stdout.splitlines()
    loaded = ast.literal_eval(modules)
    assert "kubernetes_asyncio.client.api_client" in loaded
    assert "kubernetes_asyncio.client.rest" in loaded
    assert not [m for m in loaded if m.startswith("kubernetes_asyncio.client.models.")]
    assert not [m for m in loaded if m.startswith("kubernetes_asyncio.client.api.")]
    assert kopf_sees_no_models == "True"  # kopf's optional isinstance checks, off
