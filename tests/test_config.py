from pathlib import Path

import pytest

from orchestrator.config import DEFAULT_ROUTING, Config, load_config
from planners import route
from plait.errors import ConfigError
from workers.engines.options import CacheSpec

EXAMPLE = Path(__file__).parent.parent / "deploy" / "plait.example.toml"


def test_defaults_are_two_tiers_on_the_embedded_models(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLAIT_CONFIG", raising=False)
    config = load_config()
    small, large = config.tiers["small"].engine_spec(), config.tiers["large"].engine_spec()
    assert (small.kind, small.model) == ("transformers", "smollm2-135m")
    assert (large.kind, large.model) == ("llamacpp", "qwen2.5-coder-1.5b")
    assert config.routing == DEFAULT_ROUTING and config.planner_tier == "large"
    # A job without a planner is one node of difficulty 3: `plait solve` runs on the capable tier.
    assert route(3, config.routing) == "large"
    assert config.ray.address is None


def test_a_tier_section_defines_that_tier_and_keeps_the_other_defaults(tmp_path):
    path = tmp_path / "plait.toml"
    path.write_text('[tiers.large]\nkind = "llamacpp"\nmodel = "smollm2-135m"\nparallel = 2\n')
    config = load_config(path)
    assert config.tiers["large"].engine_spec().parallel == 2 and config.tiers["large"].model == "smollm2-135m"
    assert config.tiers["small"].kind == "transformers"


def test_the_shipped_example_is_valid():
    config = load_config(EXAMPLE)
    assert config.sandbox.timeout == 10 and config.tiers["small"].engine_spec().kind == "transformers"


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    path = tmp_path / "plait.toml"
    path.write_text('redis_url = "redis://file:6379"\n[ray]\naddress = "ray://file:10001"\n')
    monkeypatch.setenv("PLAIT_REDIS_URL", "redis://env:6379")
    monkeypatch.setenv("RAY_ADDRESS", "ray://env:10001")
    config = load_config(path)
    assert (config.redis_url, config.ray.address) == ("redis://env:6379", "ray://env:10001")


@pytest.mark.parametrize(
    "text, words",
    [
        ('[routing]\n1 = "huge"\n', "tier 'huge'"),
        ('[routing]\n3 = "small"\n', "difficulty 1 needs a tier"),
        ('[routing]\nhard = "small"\n', "routing"),
        ('[tiers.big]\nkind = "openai"\n', "base_url"),
        ('[sandbox]\ntimeout = -1\n', "sandbox.timeout"),
        ('[sandbox]\ntimout = 5\n', "unknown field"),
        ("this is = not toml [", "not valid TOML"),
        ('[tiers.small.speculative]\nmethod = "medusa"\n', "tiers.small.speculative.method"),
        ('[tiers.small.speculative]\ndraft_tokens = 0\n', "tiers.small.speculative.draft_tokens"),
        ('[tiers.small.speculative]\ndraft_tokns = 2\n', "tiers.small.speculative.draft_tokns"),
        ('[tiers.small.sinks]\nsink_tokens = 4\nwindow_tokens = 128\nevict_tokens = 100\n', "evict_tokens must be 1 to window_tokens/2"),
        ('[tiers.small.cautious]\nentropy = -1\n', "tiers.small.cautious.entropy"),
        ('[tiers.small.speculative]\nmethod = "draft_model"\n', "draft_model names the draft model"),
        ('[tiers.large]\nkind = "llamacpp"\n[tiers.large.sinks]\nsink_tokens = 4\n', "only transformers tiers have this option"),
        ('[tiers.big]\nkind = "openai"\nbase_url = "http://x/v1"\n[tiers.big.speculative]\nmethod = "prompt_lookup"\n', "speculative: only transformers"),
        ('[kv_cache]\nbackend = "disk"\n', "kv_cache.backend"),
        ('[kv_cache]\nchunk_tokens = 0\n', "kv_cache.chunk_tokens"),
        ('[tiers.large]\nkind = "llamacpp"\nparallel = 0\n', "tiers.large.parallel"),
    ],
)
def test_bad_config_says_what_is_wrong(tmp_path, text, words):
    path = tmp_path / "plait.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert words in str(err.value) and str(path) in str(err.value)


def test_openai_tier_becomes_an_engine_spec():
    config = Config.model_validate(
        {"tiers": {"small": {}, "big": {"kind": "openai", "base_url": "http://x/v1", "model": "m", "parameters": 7}}, "routing": {1: "small", 4: "big"}}
    )
    spec = config.tiers["big"].engine_spec()
    assert (spec.kind, spec.base_url, spec.parameters) == ("openai", "http://x/v1", 7)


def test_planner_tier_defaults_to_the_hardest_difficultys_tier_and_must_exist():
    config = Config.model_validate({"tiers": {"a": {}, "b": {}}, "routing": {1: "a", 4: "b"}})
    assert config.planner_tier == "b"
    assert Config.model_validate({"tiers": {"a": {}, "b": {}}, "routing": {1: "a"}, "planner": {"tier": "b"}}).planner_tier == "b"
    with pytest.raises(ValueError, match="planner.tier 'z'"):
        Config.model_validate({"tiers": {"a": {}}, "routing": {1: "a"}, "planner": {"tier": "z"}})


def test_decoding_options_are_tier_options_carried_to_the_engine(tmp_path):
    path = tmp_path / "plait.toml"
    path.write_text(
        "[tiers.small]\ncontext_length = 1024\n"
        '[tiers.small.speculative]\nmethod = "prompt_lookup"\ndraft_tokens = 6\n'
        "[tiers.small.sinks]\nsink_tokens = 4\nwindow_tokens = 512\n"
        "[tiers.small.cautious]\nentropy = 2.5\nspan_tokens = 8\n"
    )
    spec = load_config(path).tiers["small"].engine_spec()
    assert (spec.speculative.method, spec.speculative.draft_tokens, spec.speculative.ngram) == ("prompt_lookup", 6, 3)
    assert (spec.sinks.sink_tokens, spec.sinks.window_tokens, spec.sinks.evict_tokens, spec.context_length) == (4, 512, 256, 1024)
    assert (spec.cautious.entropy, spec.cautious.max_trials, spec.cautious.span_tokens) == (2.5, 4, 8)
    default = Config().tiers["small"].engine_spec()
    assert not (default.speculative.on or default.sinks.on or default.cautious.on)


def test_a_llamacpp_tier_takes_drafts_and_cautious_decoding_but_not_sinks(tmp_path):
    path = tmp_path / "plait.toml"
    path.write_text('[tiers.large]\nkind = "llamacpp"\n[tiers.large.speculative]\nmethod = "prompt_lookup"\ndraft_tokens = 8\n')
    assert load_config(path).tiers["large"].engine_spec().speculative.draft_tokens == 8
    path.write_text('[tiers.large]\nkind = "llamacpp"\n[tiers.large.cautious]\nentropy = 2.0\n')
    assert load_config(path).tiers["large"].engine_spec().cautious.entropy == 2.0
    path.write_text('[tiers.large]\nkind = "llamacpp"\n[tiers.large.sinks]\nsink_tokens = 4\n')
    with pytest.raises(ConfigError, match="sinks: only transformers tiers"):
        load_config(path)
    path.write_text('[tiers.big]\nkind = "openai"\nbase_url = "http://x/v1"\n[tiers.big.cautious]\nentropy = 2.0\n')
    with pytest.raises(ConfigError, match="cautious: only transformers tiers"):
        load_config(path)


def test_the_kv_cache_section_is_the_engines_cache_spec_and_its_redis_defaults_to_the_stores(tmp_path, monkeypatch):
    monkeypatch.delenv("PLAIT_REDIS_URL", raising=False)
    path = tmp_path / "plait.toml"
    path.write_text('redis_url = "redis://store:6379/0"\n[kv_cache]\nbackend = "redis"\nmax_mb = 64\nchunk_tokens = 32\n')
    config = load_config(path)
    cache = config.kv_cache.spec(config.redis_url)
    assert isinstance(cache, CacheSpec)
    assert (cache.backend, cache.max_bytes, cache.chunk_tokens, cache.redis_url) == ("redis", 64 * 2**20, 32, "redis://store:6379/0")
    path.write_text('redis_url = "redis://store:6379/0"\n[kv_cache]\nbackend = "redis"\nredis_url = "redis://kv:6379/1"\n')
    config = load_config(path)
    assert config.kv_cache.spec(config.redis_url).redis_url == "redis://kv:6379/1"
    assert Config().kv_cache.spec(None) == CacheSpec()
