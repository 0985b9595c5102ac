"""Reading a config or naming an engine loads no model library: torch and transformers come in
only where a model, a KV tensor or a decode stage is built."""

import json
import subprocess
import sys


def test_config_engines_and_kvcache_import_without_torch_or_transformers():
    code = (
        "import json, sys; import orchestrator.config, workers.engines, workers.kvcache; "
        "orchestrator.config.Config().tiers['small'].engine_spec(); "
        "print(json.dumps(sorted(m for m in ('torch', 'transformers') if m in sys.modules)))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(loaded) == []
