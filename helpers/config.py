"""Frozen dataclass configs for the converter, the model and training, CONFIG_MAP: every
registered config by name (Magenta's own and this project's variants), and which plays each verb."""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field

# --precision: helpers.device resolves auto; the rest are TrainConfig.precision's values.
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
VELOCITY_OFFSET_LOSSES = ("all_cells", "hit_cells")  # ModelConfig.velocity_offset_loss
CONFIG_FILE = "config.json"  # a run's or a bundled model's config, beside its weights


@dataclass(frozen=True)
class ConverterConfig:
    """GrooveConverter settings (spec §2.4); groovae_4bar leaves every option off."""

    split_bars: int = 4
    steps_per_quarter: int = 4
    quarters_per_bar: int = 4
    humanize: bool = False  # encoder sees hits only: score -> performance
    tapify: bool = False  # encoder sees one tapped line on the open hi-hat: tap2drum
    fixed_velocities: bool = False
    max_note_dropout_probability: float = 0.0
    add_instruments: tuple[int, ...] = ()
    hits_as_controls: bool = False  # the decoder (and encoder) also see the target's hits


@dataclass(frozen=True)
class ModelConfig:
    """Network and objective hparams, under Magenta's names (spec §1, §3, §4)."""

    max_seq_len: int = 64
    z_size: int = 256
    enc_rnn_size: tuple[int, ...] = (512,)
    dec_rnn_size: tuple[int, ...] = (256, 256)
    free_bits: float = 48.0  # bits, taken off each example's total KL
    max_beta: float = 0.2
    beta_rate: float = 0.0  # beta = (1 - beta_rate**step) * max_beta
    dropout_keep_prob: float = 0.3  # keep probability on every LSTM layer's input
    # Where velocity and offset errors count: "all_cells" is Magenta's objective (every cell, hit
    # or not, so the outputs learn p(hit) * E[value | hit]); "hit_cells" counts only cells whose
    # target has a hit, as the Groove Transformer trains, so they learn E[value | hit].
    velocity_offset_loss: str = "all_cells"

    def __post_init__(self):
        if self.velocity_offset_loss not in VELOCITY_OFFSET_LOSSES:
            raise ValueError(
                f"velocity_offset_loss {self.velocity_offset_loss!r}: choose one of "
                f"{', '.join(VELOCITY_OFFSET_LOSSES)}"
            )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping of a training run (spec §4, §6)."""

    batch_size: int = 512
    num_steps: int = 3000  # Magenta's script default is 200,000
    learning_rate: float = 1e-3
    decay_rate: float = 0.9999
    min_learning_rate: float = 1e-5
    grad_clip: float = 1.0
    grad_norm_clip_to_zero: float = 10000.0
    checkpoint_every_steps: int = 100
    checkpoint_every_minutes: float = 5.0
    eval_every_steps: int = 100
    eval_batches: int = 3  # Magenta: 1,929 validation windows // 512
    precision: str = "float32"  # compute; bfloat16 and float16 keep float32 variables
    loss_scale_growth_steps: int = 2000  # float16: finite steps before the loss scale doubles
    seed: int = 0

    def __post_init__(self):
        if self.precision not in PRECISIONS[1:]:
            raise ValueError(
                f"precision {self.precision!r}: choose one of {', '.join(PRECISIONS[1:])}"
            )


@dataclass(frozen=True)
class GrooVAEConfig:
    """One named experiment: converter, model and training settings together."""

    name: str
    converter: ConverterConfig = field(default_factory=ConverterConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, values: dict) -> GrooVAEConfig:
        """Rebuilds a config from `to_dict` output, e.g. a run's config.json."""
        parts = {}
        for part in ("converter", "model", "train"):
            part_cls = _PART_CLASSES[part]
            hints = typing.get_type_hints(part_cls)
            items = dict(values.get(part, {}))
            if "mixed_precision" in items:  # saved before float16: a bool, true for bfloat16
                items["precision"] = "bfloat16" if items.pop("mixed_precision") else "float32"
            parts[part] = part_cls(**{k: _coerce(hints[k], v) for k, v in items.items()})
        return cls(name=values["name"], **parts)

    @classmethod
    def read(cls, path: str | os.PathLike) -> GrooVAEConfig:
        """The config saved in `path` (a run's or a bundle's config.json).

        Raises:
          OSError, ValueError, KeyError, TypeError: no such file, not JSON, or not a config.
        """
        with open(path) as file:
            return cls.from_dict(json.load(file))


_PART_CLASSES = {"converter": ConverterConfig, "model": ModelConfig, "train": TrainConfig}


def _coerce(hint: typing.Any, value: typing.Any) -> typing.Any:
    """JSON has lists where the dataclasses hold tuples."""
    if typing.get_origin(hint) is tuple:
        return tuple(value)
    return value


def _check_type(key: str, hint: typing.Any, value: typing.Any) -> typing.Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (tuple, list)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise TypeError(f"config key {key!r} wants a tuple of ints, got {value!r}")
        return tuple(value)
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, hint)
    if not ok:
        raise TypeError(f"config key {key!r} wants {hint.__name__}, got {value!r}")
    return value


def with_overrides(config: GrooVAEConfig, **overrides: typing.Any) -> GrooVAEConfig:
    """Returns `config` with fields replaced by name, whichever part holds them.

    Raises:
      KeyError: a name that no part of the config has.
      TypeError: a value of the wrong type.
    """
    parts = {"converter": {}, "model": {}, "train": {}}
    name = overrides.pop("name", config.name)
    for key, value in overrides.items():
        for part, part_cls in _PART_CLASSES.items():
            hints = typing.get_type_hints(part_cls)
            if key in hints:
                parts[part][key] = _check_type(key, hints[key], value)
                break
        else:
            raise KeyError(f"unknown config key {key!r}")
    return dataclasses.replace(
        config,
        name=name,
        **{p: dataclasses.replace(getattr(config, p), **v) for p, v in parts.items()},
    )


CONFIG_MAP: dict[str, GrooVAEConfig] = {
    # Magenta's CONFIG_MAP['groovae_4bar'], every value as spec §1 resolves it.
    "groovae_4bar": GrooVAEConfig(name="groovae_4bar"),
    # Score -> performance: the encoder sees the hits without velocity or timing.
    "groovae_4bar_humanize": GrooVAEConfig(
        name="groovae_4bar_humanize", converter=ConverterConfig(humanize=True)
    ),
    # Tap2drum: the encoder sees one tapped rhythm; the decoder writes the full kit.
    "groovae_4bar_tap": GrooVAEConfig(
        name="groovae_4bar_tap", converter=ConverterConfig(tapify=True)
    ),
    # Magenta's 2-bar family (configs.py), trained on TFDS's groove/2bar-midionly cut.
    **{
        name: GrooVAEConfig(
            name=name,
            converter=ConverterConfig(split_bars=2, **options),
            model=ModelConfig(max_seq_len=32),
        )
        for name, options in {
            "groovae_2bar_humanize": dict(humanize=True),
            "groovae_2bar_tap_fixed_velocity": dict(tapify=True, fixed_velocities=True),
            "groovae_2bar_tap_fixed_velocity_note_dropout": dict(
                tapify=True, fixed_velocities=True, max_note_dropout_probability=0.8
            ),
            "groovae_2bar_add_closed_hh": dict(add_instruments=(2,)),
            "groovae_2bar_hits_control_tfds": dict(hits_as_controls=True),
        }.items()
    },
    # The same code path at toy sizes, for tests and smoke runs of the notebooks.
    "tiny": GrooVAEConfig(
        name="tiny",
        model=ModelConfig(z_size=8, enc_rnn_size=(16,), dec_rnn_size=(16, 16), free_bits=0.0),
        train=TrainConfig(
            batch_size=16,
            num_steps=20,
            checkpoint_every_steps=10,
            eval_every_steps=10,
            eval_batches=1,
        ),
    ),
}


# Magenta's own GrooVAE configs in CONFIG_MAP (the rest are this project's variants).
MAGENTA_CONFIGS = (
    "groovae_4bar",
    "groovae_2bar_humanize",
    "groovae_2bar_tap_fixed_velocity",
    "groovae_2bar_tap_fixed_velocity_note_dropout",
    "groovae_2bar_add_closed_hh",
    "groovae_2bar_hits_control_tfds",
)

# Which config plays each verb: Magenta's demo notebook's choices, except that humanize plays
# the hits-conditioned model, which keeps every hit it is given (groovae_2bar_humanize redraws
# them; pick it by name for Magenta's own humanize).
VERB_CONFIGS = {
    "sample": "groovae_4bar",
    "interpolate": "groovae_4bar",
    "humanize": "groovae_2bar_hits_control_tfds",
    "drumify": "groovae_2bar_tap_fixed_velocity",
    "transfer": "groovae_2bar_hits_control_tfds",
    "infill": "groovae_2bar_add_closed_hh",
}
MODELS = ("bundled", "magenta")  # besides a folder: whose weights play (sample.pick_model)


def get_config(name: str, /, **overrides: typing.Any) -> GrooVAEConfig:
    """Returns the registered config `name`, with any fields overridden by keyword.

    Raises:
      KeyError: an unknown config name or override key.
      TypeError: an override of the wrong type.
    """
    if name not in CONFIG_MAP:
        raise KeyError(f"unknown config {name!r}; registered: {sorted(CONFIG_MAP)}")
    return with_overrides(CONFIG_MAP[name], **overrides)
