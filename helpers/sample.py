"""Grooves from a trained run: sample, encode, decode, interpolate, humanize, drumify, MIDI."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import note_seq
import numpy as np

from helpers.config import GrooVAEConfig
from helpers import paths
from helpers.constants import (
    DEFAULT_QPM,
    HITS,
    MAX_MIDI_VELOCITY,
    MIDI_DRUM_CHANNEL,
    OUTPUTS_DIR,
    QUARTERS_PER_BAR,
    ROLAND_DRUM_PITCH_CLASSES,
    STEPS_PER_QUARTER,
    VELOCITIES,
    WINDOW_STEPS,
)
from helpers.converter import GrooveConverter, Rejected
from helpers.inputs import encoder_inputs
from helpers.pretrained import PRETRAINED_DIR, bundled_names, load_bundle
from helpers.checkpoints import TrainError, checkpoint_step, find_run, latest_checkpoint
from helpers.checkpoints import restore_model
from helpers.windowing import Windows, cycle, sequence_windows, stitch

DEFAULT_TEMPERATURE = 0.5  # music_vae_generate.py's default (spec §5)
DECODE_BATCH = 512
TAP_PITCH = ROLAND_DRUM_PITCH_CLASSES[2][0]  # any known drum pitch works: tapify keeps the loudest


class SampleError(Exception):
    """A run, MIDI file or NoteSequence that cannot be sampled from or encoded."""


def newest_or_bundled(
    outputs_dir: str | os.PathLike = OUTPUTS_DIR, name: str = "groovae_4bar", root=PRETRAINED_DIR
) -> TrainedModel:
    """The newest run of your own under outputs_dir/runs/, else the bundled model `name`."""
    try:
        run_dir = find_run(outputs_dir)
    except TrainError:  # no run with a checkpoint yet
        model = TrainedModel.pretrained(name, root)
        model.source += f": no run of your own under {paths.runs_dir(outputs_dir)}"
        return model
    return TrainedModel(run_dir)


def find_config_run(config_name: str, outputs_dir: str | os.PathLike = OUTPUTS_DIR) -> Path | None:
    """The run folder trained with `config_name` under outputs_dir/runs, or None with a hint."""
    run_dir = paths.run_dir(outputs_dir, config_name)
    if latest_checkpoint(run_dir) is None:
        print(
            f"No {config_name} checkpoint in {run_dir}. Train one in 02_train with "
            f'CONFIG_NAME = "{config_name}", or run: python -m helpers.train --config '
            f"{config_name} --steps 3000 --run-dir {run_dir}"
        )
        return None
    return run_dir


def config_model(
    config_name: str, outputs_dir: str | os.PathLike = OUTPUTS_DIR, root=PRETRAINED_DIR
) -> TrainedModel | None:
    """Your run of `config_name` under outputs_dir/runs, else its bundled model, else None.

    The bundle stands in only while you have no run of that config, and says so in one line;
    with neither, find_config_run's hint says how to train one.
    """
    has_run = latest_checkpoint(paths.run_dir(outputs_dir, config_name)) is not None
    if not has_run and config_name in bundled_names(root):
        model = TrainedModel.pretrained(config_name, root)
        print(f"{config_name}: playing {model.source}; a run of your own under "
              f"{paths.runs_dir(outputs_dir)} takes its place")
        return model
    run_dir = find_config_run(config_name, outputs_dir)
    return None if run_dir is None else TrainedModel(run_dir)


def load_midi(path: str | os.PathLike) -> note_seq.NoteSequence:
    """Reads a MIDI file as a NoteSequence.

    Raises:
      SampleError: the file is missing or is not a readable MIDI file.
    """
    path = Path(path)
    try:
        return note_seq.midi_file_to_note_sequence(str(path))
    except Exception as err:  # note-seq and mido raise many types for a corrupt file
        raise SampleError(
            f"cannot read {path} as MIDI ({type(err).__name__}: {err}); give a Standard MIDI "
            "File (.mid) holding a drum groove in 4/4 at one tempo"
        ) from err


def set_tempo(
    sequence: note_seq.NoteSequence, qpm: float, num_steps: int = WINDOW_STEPS
) -> note_seq.NoteSequence:
    """A copy of a decoded 120-qpm groove played at `qpm`: times scaled, one tempo, 4/4.

    The grid stays put: `num_steps` sixteenths at the new tempo (total_time set to that).
    """
    if qpm <= 0:
        raise SampleError(f"qpm must be positive, got {qpm}")
    scale = DEFAULT_QPM / qpm
    out = copy.deepcopy(sequence)
    for note in out.notes:
        note.start_time *= scale
        note.end_time *= scale
    del out.tempos[:]
    del out.time_signatures[:]
    out.tempos.add(qpm=qpm, time=0.0)
    out.time_signatures.add(numerator=QUARTERS_PER_BAR, denominator=4, time=0.0)
    out.total_time = num_steps / STEPS_PER_QUARTER * 60.0 / qpm
    return out


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between unnormalised vectors, as Magenta's interpolate (spec §5).

    omega is the angle between a and b; the result is (sin((1-t) omega) a + sin(t omega) b)
    / sin(omega), falling back to a straight line when a and b are (anti)parallel.
    """
    cos = np.dot(a / np.linalg.norm(a), b / np.linalg.norm(b))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.isclose(np.sin(omega), 0.0):
        return (1.0 - t) * a + t * b
    return (np.sin((1.0 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


class TrainedModel:
    """A trained GrooVAE with Magenta's TrainedModel surface (spec §5), returning NoteSequences.

    The converter runs in 'infer' mode, as Magenta's does: decoded grooves are written with the
    REDUCED map's pitches (toms 45, 48, 50) and, by default, MIDI is read with that map too.
    The map surprise (spec §2.1): GMD's Roland pitches 45, 48, 58 fall in other classes under it
    than in training, so pass encode_mode="eval" to encode GMD files with the training map.
    Variants follow their run's config: a humanize run's encoder sees hits only, a tap run's
    one tapped line.

    Args:
      run_dir: a run folder (config.json + checkpoints); the newest under `outputs_dir` if None.
      outputs_dir: where to look for runs.
      checkpoint: a checkpoint in the run; its newest if None.
      encode_mode: "infer" (Magenta) or "eval" (the training map) for reading NoteSequences.
      model: an already built model (with `config`, `encode`, `decode`) instead of a run.
      step: the step `model` was trained to; a run's comes from its checkpoint. Also kept:
        `label` naming sample folders ("<run>-ckpt-<step>", "<name>-pretrained") and `source`,
        one line saying which model this is.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike | None = None,
        outputs_dir: str | os.PathLike = OUTPUTS_DIR,
        checkpoint: str | os.PathLike | None = None,
        encode_mode: str = "infer",
        model=None,
        step: int | None = None,
    ):
        if model is None:
            self.run_dir = Path(run_dir) if run_dir is not None else find_run(outputs_dir)
            checkpoint = checkpoint or latest_checkpoint(self.run_dir)
            model = restore_model(self.run_dir, checkpoint)
            step = checkpoint_step(checkpoint)
            self.label = f"{self.run_dir.name}-{Path(checkpoint).stem}"
            self.source = f"your run {self.run_dir} at step {step}"
        else:
            self.run_dir = None
            self.label = self.source = model.config.name
        self.step = step
        self.model = model
        self.config: GrooVAEConfig = model.config
        self._encoder_converter = GrooveConverter.from_config(self.config.converter)
        self._encoder_converter.set_mode(encode_mode)
        self._decoder_converter = GrooveConverter.from_config(self.config.converter)
        self._decoder_converter.set_mode("infer")

    @classmethod
    def pretrained(cls, name: str = "groovae_4bar", root=PRETRAINED_DIR, **kwargs) -> TrainedModel:
        """The model bundled in pretrained/<name>/, at float32 (PretrainedError lists the names)."""
        model, step = load_bundle(name, root)
        bundled = cls(model=model, step=step, **kwargs)
        bundled.label = f"{name}-pretrained"
        bundled.source = f"the bundled {name} ({Path(root).name}/{name}, step {step})"
        return bundled

    # --- arrays ------------------------------------------------------------------------------

    def sample_grooves(
        self, n: int, temperature: float = DEFAULT_TEMPERATURE, seed: int | None = None
    ) -> np.ndarray:
        """n grooves from z ~ N(0, I); temperature scales only the hit logits (spec §5).

        Returns:
          (n, 64, 27) float32.
        """
        z = np.random.default_rng(seed).standard_normal((n, self.config.model.z_size))
        return self.decode_grooves(z.astype(np.float32), temperature, seed)

    def decode_grooves(
        self, z: np.ndarray, temperature: float = DEFAULT_TEMPERATURE, seed: int | None = None
    ) -> np.ndarray:
        """The sampling decoder from given codes, in batches of 512.

        Args:
          z: (n, z_size) float latent codes.

        Returns:
          (n, 64, 27) float32 grooves [hits (0/1) | velocities | offsets].
        """
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.config.model.z_size:
            raise SampleError(f"z must be (n, {self.config.model.z_size}), got shape {z.shape}")
        batches = []
        for i, begin in enumerate(range(0, len(z), DECODE_BATCH)):
            batch_seed = None if seed is None else seed + i
            grooves = self.model.decode(z[begin : begin + DECODE_BATCH], temperature, batch_seed)
            batches.append(np.asarray(grooves, np.float32))
        return np.concatenate(batches) if batches else np.zeros((0, WINDOW_STEPS, 27), np.float32)

    def windows(self, sequence: note_seq.NoteSequence, where: str = "sequence") -> Windows:
        """A groove of any number of 4/4 bars at one tempo, cut into 4-bar windows.

        Raises:
          SampleError: naming `where` and why the converter refuses the sequence.
        """
        if sequence.filename:
            where += f" ({sequence.filename})"
        try:
            return sequence_windows(sequence, self._encoder_converter)
        except Rejected as rejected:
            raise SampleError(
                f"{where} cannot be encoded: {rejected.reason}; give a drum groove in 4/4 at a "
                "single tempo with drum notes (pitches outside the drum map are skipped)"
            ) from None

    def note_sequences_to_inputs(self, note_sequences: list[note_seq.NoteSequence]) -> np.ndarray:
        """Encoder inputs of every 4-bar window of each sequence, in order.

        Returns:
          (windows, 64, 27) float32, as the run's converter builds them (hits only for humanize
          runs, the tapped line for tap runs); a sequence of b bars gives ceil(b / 4) windows.

        Raises:
          SampleError: naming the sequence and why it cannot be encoded.
        """
        grooves = [self.windows(s, f"sequence {i}").grooves for i, s in enumerate(note_sequences)]
        rng = self._encoder_converter.rng  # note dropout draws from the converter's stream
        return encoder_inputs(np.concatenate(grooves), self.config.converter, rng)

    # --- NoteSequences (Magenta's surface) ---------------------------------------------------

    def grooves_to_note_sequences(
        self, grooves: np.ndarray, qpm: float = DEFAULT_QPM
    ) -> list[note_seq.NoteSequence]:
        """NoteSequences of (n, steps, 27) grooves via from_tensors (spec §2.3), at `qpm`, 4/4."""
        steps = np.shape(grooves)[1]
        return [set_tempo(s, qpm, steps) for s in self._decoder_converter.from_tensors(grooves)]

    def sample(
        self,
        n: int,
        temperature: float = DEFAULT_TEMPERATURE,
        seed: int | None = None,
        qpm: float = DEFAULT_QPM,
    ) -> list[note_seq.NoteSequence]:
        """n new grooves from the prior; z is not scaled by temperature (spec §5)."""
        return self.grooves_to_note_sequences(self.sample_grooves(n, temperature, seed), qpm)

    def encode(
        self, note_sequences: list[note_seq.NoteSequence], seed: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Posterior of every 4-bar window of each sequence (one per sequence of up to 4 bars).

        Args:
          note_sequences: drum NoteSequences of any number of 4/4 bars, each at one tempo; a
            last part shorter than 4 bars is looped to fill its window.
          seed: for the posterior sample z.

        Returns:
          (z, mu, sigma), each (windows, z_size) float32; z = mu + sigma * eps, a fresh sample.

        Raises:
          SampleError: a sequence not in 4/4, with several tempos or without drum notes.
        """
        mu, sigma = self.model.encode(self.note_sequences_to_inputs(note_sequences))
        mu, sigma = np.asarray(mu, np.float32), np.asarray(sigma, np.float32)
        eps = np.random.default_rng(seed).standard_normal(mu.shape).astype(np.float32)
        return mu + sigma * eps, mu, sigma

    def decode(
        self,
        z: np.ndarray,
        temperature: float = DEFAULT_TEMPERATURE,
        seed: int | None = None,
        qpm: float = DEFAULT_QPM,
    ) -> list[note_seq.NoteSequence]:
        """Grooves decoded from (n, z_size) codes."""
        return self.grooves_to_note_sequences(self.decode_grooves(z, temperature, seed), qpm)

    def reencode(
        self,
        sequence: note_seq.NoteSequence,
        temperature: float = DEFAULT_TEMPERATURE,
        seed: int | None = None,
        qpm: float | None = None,
    ) -> note_seq.NoteSequence:
        """Each window through the posterior and back, stitched to the input's length, at `qpm`
        (the input's own tempo by default)."""
        windows = self.windows(sequence)
        z, _, _ = self.encode([sequence], seed)
        groove = stitch(self.decode_grooves(z, temperature, seed), windows.bars)[None]
        return self.grooves_to_note_sequences(groove, qpm or windows.qpm)[0]

    def interpolate(
        self,
        start: note_seq.NoteSequence,
        end: note_seq.NoteSequence,
        num_steps: int,
        temperature: float = DEFAULT_TEMPERATURE,
        seed: int | None = None,
        qpm: float | None = None,
    ) -> list[note_seq.NoteSequence]:
        """num_steps grooves on the slerp between the two posterior means (spec §5).

        Grooves longer than 4 bars go window by window: every step has the start groove's length,
        window i of the start heading to window i of the end (the end's windows taken in turn
        again when it is shorter). Steps play at `qpm`, the start groove's tempo by default.
        """
        ends = [self.windows(s, name) for s, name in ((start, "start"), (end, "end"))]
        _, mu, _ = self.encode([start, end], seed=seed)
        n = len(ends[0].grooves)
        mu_start, mu_end = mu[:n], cycle(mu[n:], n)
        ts = np.linspace(0.0, 1.0, num_steps)
        z = np.stack([slerp(a, b, t) for t in ts for a, b in zip(mu_start, mu_end)])
        grooves = self.decode_grooves(z, temperature, seed).reshape(num_steps, n, WINDOW_STEPS, -1)
        steps = np.stack([stitch(g, ends[0].bars) for g in grooves])
        return self.grooves_to_note_sequences(steps, qpm or ends[0].qpm)


def quantized_score(grooves: np.ndarray, velocity: int = 80) -> np.ndarray:
    """The hits of (n, 64, 27) grooves on the grid at one velocity: a humanize model's kind of input."""
    score = np.zeros_like(grooves)
    score[..., HITS] = grooves[..., HITS]
    score[..., VELOCITIES] = grooves[..., HITS] * velocity / MAX_MIDI_VELOCITY
    return score


def humanize(
    model: TrainedModel,
    note_sequence: note_seq.NoteSequence,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int | None = None,
    qpm: float | None = None,
) -> note_seq.NoteSequence:
    """Adds velocity and microtiming to a quantized drum score, with a groovae_4bar_humanize run.

    The run's converter strips the input to its hits (spec §2.4); the groove comes back with the
    input's length and, unless `qpm` is given, its tempo, 4 bars at a time.

    Raises:
      SampleError: the model is not a humanize run, or the sequence cannot be encoded.
    """
    if not model.config.converter.humanize:
        raise SampleError(
            f"run {model.config.name!r} was not trained to humanize; load a "
            "groovae_4bar_humanize run"
        )
    return model.reencode(note_sequence, temperature, seed, qpm)


def drumify(
    model: TrainedModel,
    note_sequence: note_seq.NoteSequence,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int | None = None,
    qpm: float | None = None,
) -> note_seq.NoteSequence:
    """Turns any rhythm (taps, a melody, a drum part) into a full kit, with a tap run.

    Every note is read as a drum hit first, so any instrument and pitch counts as a tap; the
    run's converter then keeps the loudest per step on one line (tapify, spec §2.4). The kit
    comes back with the input's length and, unless `qpm` is given, its tempo.

    Raises:
      SampleError: the model is not a groovae_4bar_tap run, or the sequence cannot be encoded.
    """
    if not model.config.converter.tapify:
        raise SampleError(
            f"run {model.config.name!r} was not trained on taps; load a groovae_4bar_tap run"
        )
    taps = copy.deepcopy(note_sequence)
    for note in taps.notes:
        note.pitch, note.is_drum, note.instrument = TAP_PITCH, True, MIDI_DRUM_CHANNEL
    return model.reencode(taps, temperature, seed, qpm)


if __name__ == "__main__":
    # `python -m helpers.sample` is the verbs' command line under the name users know; it lives
    # in helpers.verbs, which writes files through modules that come after this one.
    from helpers.verbs import main

    main()
