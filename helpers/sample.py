"""Grooves from a trained run: sample, encode, decode, interpolate, humanize, drumify, MIDI."""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path

import note_seq
import numpy as np

from helpers.config import GrooVAEConfig
from helpers.constants import (
    DEFAULT_QPM,
    MIDI_DRUM_CHANNEL,
    OUTPUTS_DIR,
    QUARTERS_PER_BAR,
    ROLAND_DRUM_PITCH_CLASSES,
    STEPS_PER_QUARTER,
    WINDOW_STEPS,
)
from helpers.converter import GrooveConverter, Rejected
from helpers.pretrained import PRETRAINED_DIR, load_bundle
from helpers.train import TrainError, checkpoint_step, find_run, latest_checkpoint, restore_model

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
        model.source += f": no run of your own under {Path(outputs_dir) / 'runs'}"
        return model
    return TrainedModel(run_dir)


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
            "File (.mid) holding one 4-bar drum groove in 4/4 at one tempo"
        ) from err


def groove_paths(out_dir: str | os.PathLike, n: int, prefix: str = "groove") -> list[Path]:
    """out_dir/{prefix}_01.mid, _02.mid, ...: the names write_grooves uses (wider past 99)."""
    width = max(2, len(str(n)))
    return [Path(out_dir) / f"{prefix}_{i:0{width}d}.mid" for i in range(1, n + 1)]


def write_grooves(
    sequences: list[note_seq.NoteSequence],
    out_dir: str | os.PathLike,
    prefix: str = "groove",
    overwrite: bool = False,
) -> list[Path]:
    """Writes sequences as out_dir/{prefix}_01.mid, _02.mid, ... (wider numbers past 99).

    Every name is checked before anything is written, so a refusal leaves no partial set.

    Returns:
      The paths written, in order.

    Raises:
      FileExistsError: a target exists and `overwrite` is False.
    """
    out_dir = Path(out_dir)
    paths = groove_paths(out_dir, len(sequences), prefix)
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists; pass overwrite=True to replace it")
    out_dir.mkdir(parents=True, exist_ok=True)
    for sequence, path in zip(sequences, paths):
        note_seq.sequence_proto_to_midi_file(sequence, str(path))
    return paths


def set_tempo(sequence: note_seq.NoteSequence, qpm: float) -> note_seq.NoteSequence:
    """A copy of a decoded 120-qpm groove played at `qpm`: times scaled, one tempo, 4/4.

    The grid stays put: 64 steps are 4 bars of 4/4 at the new tempo (total_time set to that).
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
    out.total_time = WINDOW_STEPS / STEPS_PER_QUARTER * 60.0 / qpm
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

    def note_sequences_to_inputs(self, note_sequences: list[note_seq.NoteSequence]) -> np.ndarray:
        """Encoder inputs of sequences that are each exactly one 4-bar 4/4 window.

        Returns:
          (n, 64, 27) float32, as the run's converter builds them (hits only for humanize runs,
          the tapped line for tap runs).

        Raises:
          SampleError: naming the sequence and why it does not give one window.
        """
        inputs = []
        for i, sequence in enumerate(note_sequences):
            where = f"sequence {i}" + (f" ({sequence.filename})" if sequence.filename else "")
            try:
                groove = self._encoder_converter.note_sequence_to_groove(sequence)
            except Rejected as rejected:
                raise SampleError(
                    f"{where} cannot be encoded: {rejected.reason}; give one 4-bar groove in "
                    "4/4 at a single tempo with drum notes (pitches outside the drum map are "
                    "skipped)"
                ) from None
            windows = self._encoder_converter.groove_to_tensors(groove).inputs
            if len(windows) != 1:
                bars = len(groove) // (WINDOW_STEPS // 4)
                raise SampleError(
                    f"{where} spans {bars} bars (up to its last onset); encode needs exactly 4, "
                    "with an onset in bar 4. Trim or pad it, e.g. "
                    "note_seq.extract_subsequence(ns, start, start + 4 bars)"
                )
            inputs.append(windows[0])
        return np.stack(inputs).astype(np.float32)

    # --- NoteSequences (Magenta's surface) ---------------------------------------------------

    def grooves_to_note_sequences(
        self, grooves: np.ndarray, qpm: float = DEFAULT_QPM
    ) -> list[note_seq.NoteSequence]:
        """NoteSequences of (n, 64, 27) grooves via from_tensors (spec §2.3), at `qpm` in 4/4."""
        return [set_tempo(s, qpm) for s in self._decoder_converter.from_tensors(grooves)]

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
        """Posterior of each sequence: each must give exactly one 4-bar 4/4 window.

        Args:
          note_sequences: drum NoteSequences (any single tempo).
          seed: for the posterior sample z.

        Returns:
          (z, mu, sigma), each (n, z_size) float32; z = mu + sigma * eps, a fresh sample.

        Raises:
          SampleError: a sequence that is not one 4-bar 4/4 window with drums.
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

    def interpolate(
        self,
        start: note_seq.NoteSequence,
        end: note_seq.NoteSequence,
        num_steps: int,
        temperature: float = DEFAULT_TEMPERATURE,
        seed: int | None = None,
        qpm: float = DEFAULT_QPM,
    ) -> list[note_seq.NoteSequence]:
        """num_steps grooves on the slerp between the two posterior means (spec §5)."""
        _, mu, _ = self.encode([start, end], seed=seed)
        z = np.stack([slerp(mu[0], mu[1], t) for t in np.linspace(0.0, 1.0, num_steps)])
        return self.decode(z, temperature, seed, qpm)


def _input_qpm(sequence: note_seq.NoteSequence) -> float:
    return sequence.tempos[0].qpm if sequence.tempos else DEFAULT_QPM


def humanize(
    model: TrainedModel,
    note_sequence: note_seq.NoteSequence,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int | None = None,
) -> note_seq.NoteSequence:
    """Adds velocity and microtiming to a quantized drum score, with a groovae_4bar_humanize run.

    The run's converter strips the input to its hits (spec §2.4); the groove comes back at the
    input's tempo.

    Raises:
      SampleError: the model is not a humanize run, or the sequence is not one 4-bar window.
    """
    if not model.config.converter.humanize:
        raise SampleError(
            f"run {model.config.name!r} was not trained to humanize; load a "
            "groovae_4bar_humanize run"
        )
    z, _, _ = model.encode([note_sequence], seed)
    return model.decode(z, temperature, seed, qpm=_input_qpm(note_sequence))[0]


def drumify(
    model: TrainedModel,
    note_sequence: note_seq.NoteSequence,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int | None = None,
) -> note_seq.NoteSequence:
    """Turns any 4-bar rhythm (taps, a melody, a drum part) into a full kit, with a tap run.

    Every note is read as a drum hit first, so any instrument and pitch counts as a tap; the
    run's converter then keeps the loudest per step on one line (tapify, spec §2.4).

    Raises:
      SampleError: the model is not a groovae_4bar_tap run, or the sequence is not one window.
    """
    if not model.config.converter.tapify:
        raise SampleError(
            f"run {model.config.name!r} was not trained on taps; load a groovae_4bar_tap run"
        )
    taps = copy.deepcopy(note_sequence)
    for note in taps.notes:
        note.pitch, note.is_drum, note.instrument = TAP_PITCH, True, MIDI_DRUM_CHANNEL
    z, _, _ = model.encode([taps], seed)
    return model.decode(z, temperature, seed, qpm=_input_qpm(note_sequence))[0]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags of `python -m helpers.sample` (music_vae_generate.py's, renamed)."""
    parser = argparse.ArgumentParser(description="Sample grooves from a trained GrooVAE run.")
    parser.add_argument("--checkpoint", help="run folder (default: newest run, else bundled)")
    parser.add_argument("--outputs-dir", "--outputs_dir", default=str(OUTPUTS_DIR))
    parser.add_argument("--num", type=int, default=5)
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--qpm", type=float, default=DEFAULT_QPM)
    parser.add_argument("--out", required=True, help="folder for groove_01.mid ...")
    parser.add_argument("--overwrite", action="store_true")
    return parser.parse_args(argv)


def sample_from_args(args: argparse.Namespace) -> list[note_seq.NoteSequence]:
    """The grooves the command line asks for."""
    outputs_dir = args.outputs_dir
    model = TrainedModel(args.checkpoint) if args.checkpoint else newest_or_bundled(outputs_dir)
    print(f"model: {model.source}")
    return model.sample(args.num, args.temperature, args.seed, args.qpm)


if __name__ == "__main__":
    # MIDI with its pianoroll PNG and WAV beside it; the rendering lives past sample in the chain.
    from helpers.pipeline import save_grooves

    cli_args = parse_args()
    for midi_path in save_grooves(sample_from_args(cli_args), cli_args.out,
                                  overwrite=cli_args.overwrite):
        print(midi_path)
