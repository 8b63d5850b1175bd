"""Tests for helpers/config.py: Magenta's groovae_4bar values, variants, overrides, JSON
round trip."""

import pytest

from helpers.config import CONFIG_MAP, GrooVAEConfig, get_config


def test_get_config_groovae_4bar_matches_magenta():
    config = get_config("groovae_4bar")
    m, t = config.model, config.train
    assert (m.z_size, m.enc_rnn_size, m.dec_rnn_size, m.max_seq_len) == (
        256,
        (512,),
        (256, 256),
        64,
    )
    assert (m.free_bits, m.max_beta, m.beta_rate, m.dropout_keep_prob) == (48.0, 0.2, 0.0, 0.3)
    assert (t.batch_size, t.learning_rate, t.decay_rate, t.min_learning_rate) == (
        512,
        1e-3,
        0.9999,
        1e-5,
    )
    assert (t.grad_clip, t.grad_norm_clip_to_zero) == (1.0, 10000.0)
    assert not any([config.converter.humanize, config.converter.tapify])


def test_get_config_variants_change_only_the_encoder_input():
    base = get_config("groovae_4bar")
    for name, flag in [("groovae_4bar_humanize", "humanize"), ("groovae_4bar_tap", "tapify")]:
        variant = get_config(name)
        assert getattr(variant.converter, flag)
        assert (variant.model, variant.train) == (base.model, base.train)


def test_get_config_overrides_by_field_name():
    config = get_config("groovae_4bar", batch_size=64, z_size=32, dropout_keep_prob=1)
    assert (config.train.batch_size, config.model.z_size) == (64, 32)
    assert config.model.dropout_keep_prob == 1.0 and isinstance(
        config.model.dropout_keep_prob, float
    )
    assert CONFIG_MAP["groovae_4bar"].train.batch_size == 512  # the registry is untouched


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"batch_sise": 64}, KeyError),
        ({"batch_size": "64"}, TypeError),
        ({"humanize": 1}, TypeError),
    ],
)
def test_get_config_rejects_bad_overrides(overrides, error):
    with pytest.raises(error):
        get_config("groovae_4bar", **overrides)


def test_get_config_unknown_name_lists_registry():
    with pytest.raises(KeyError, match="groovae_4bar"):
        get_config("groovae_2bar")


@pytest.mark.parametrize("name", sorted(CONFIG_MAP))
def test_config_json_round_trip(name, tmp_path):
    import json

    config = get_config(name)
    assert GrooVAEConfig.from_dict(json.loads(config.to_json())) == config
    (tmp_path / "config.json").write_text(config.to_json())
    assert GrooVAEConfig.read(tmp_path / "config.json") == config


def test_get_config_can_rename():
    config = get_config("tiny", name="tiny_humanize", humanize=True)
    assert config.name == "tiny_humanize" and config.converter.humanize


@pytest.mark.parametrize("mixed_precision, precision", [(True, "bfloat16"), (False, "float32")])
def test_from_dict_reads_configs_saved_before_float16(mixed_precision, precision):
    """Run folders and bundles saved a bool, `mixed_precision`, true for bfloat16."""
    values = get_config("tiny").to_dict()
    del values["train"]["precision"], values["train"]["loss_scale_growth_steps"]
    values["train"]["mixed_precision"] = mixed_precision
    assert GrooVAEConfig.from_dict(values) == get_config("tiny", precision=precision)


def test_get_config_refuses_an_unknown_precision():
    with pytest.raises(ValueError, match="float32, bfloat16, float16"):
        get_config("tiny", precision="fp16")
