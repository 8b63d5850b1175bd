"""Trained models and which one plays: sample, encode, decode, interpolate, in Magenta's surface.

The groove tools played by these models are in helpers/tools.py, their command line
`python -m helpers.verbs` in helpers/verbs.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import note_seq
import numpy as np

from helpers import constants, magenta
from helpers.bundles import PRETRAINED_DIR, bundled_names, load_bundle
from helpers.config import VERB_CONFIGS, GrooVAEConfig, get_config
from helpers.constants import DEFAULT_QPM, DEFAULT_TEMPERATURE, GROOVE_DEPTH, OUTPUTS_DIR
from helpers.converter import GrooveConverter, Rejected, encoder_inputs
from helpers.model import DECODINGS, HitResiduals
from helpers.runs import RunError, checkpoint_step, find_run, latest_checkpoint, restore_model
from helpers.windowing import Windows, cycle, sequence_windows, set_tempo, stitch

DECODE_BATCH = 512


class SampleError(Exception):
    """A model that cannot be found or used as asked, or a groove it cannot encode."""


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
    Variants follow their config: a humanize model's encoder sees hits only, a tap model's one
    tapped line, a hits-conditioned model also gets each window's hits as controls.

    Args:
      run_dir: a run folder (config.json + checkpoints); the newest under `outputs_dir` if None.
      outputs_dir: where to look for runs.
      checkpoint: a checkpoint in the run; its newest if None.
      encode_mode: "infer" (Magenta) or "eval" (the training map) for reading NoteSequences.
      model: an already built model (with `config`, `encode`, `decode`) instead of a run.
      step: the step `model` was trained to; a run's comes from its checkpoint. Also kept:
        `label` naming sample folders ("<run>-ckpt-<step>", "<name>-pretrained") and `source`,
        one line saying which model this is.
      decoding: how drawn hits get their velocities and offsets, one of helpers.model
        DECODINGS: "per_hit" (default) or Magenta's exact "magenta".
      residuals: the HitResiduals per-hit decoding draws from; default the run's or bundle's
        own, else those of the bundled groovae_4bar (`residuals_source` says which).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike | None = None,
        outputs_dir: str | os.PathLike = OUTPUTS_DIR,
        checkpoint: str | os.PathLike | None = None,
        encode_mode: str = "infer",
        model=None,
        step: int | None = None,
        decoding: str = "per_hit",
        residuals: HitResiduals | None = None,
    ):
        if decoding not in DECODINGS:
            raise SampleError(f"decoding {decoding!r}: choose one of {', '.join(DECODINGS)}")
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
        self.decoding = decoding
        self.residuals, self.residuals_source = residuals, "given"
        if residuals is None:
            self.residuals, self.residuals_source = own_residuals(self.run_dir)
        self.config: GrooVAEConfig = model.config
        self._encoder_converter = GrooveConverter.from_config(self.config.converter)
        self._encoder_converter.set_mode(encode_mode)
        self._decoder_converter = GrooveConverter.from_config(self.config.converter)
        self._decoder_converter.set_mode("infer")

    @classmethod
    def pretrained(cls, name: str = "groovae_4bar", root=PRETRAINED_DIR, **kwargs) -> TrainedModel:
        """The model bundled in pretrained/<name>/, at float32 (BundleError lists the names)."""
        model, step = load_bundle(name, root)
        kwargs.setdefault("residuals", HitResiduals.read(Path(root) / name))
        bundled = cls(model=model, step=step, **kwargs)
        bundled.label = f"{name}-pretrained"
        bundled.source = f"the bundled {name} ({Path(root).name}/{name}, step {step})"
        return bundled

    @classmethod
    def magenta(
        cls, name_or_path: str | os.PathLike, config: str | GrooVAEConfig | None = None, **kwargs
    ) -> TrainedModel:
        """Magenta's released model: a name (downloaded once into the cache), a TF1 checkpoint
        (folder, prefix or the released .tar) or a magenta-js folder (helpers.magenta.load).

        Raises:
          MagentaError: no such model, a failed or damaged download, or weights of other sizes.
        """
        if isinstance(config, str):
            config = get_config(config)
        model, source = magenta.load(name_or_path, config)
        loaded = cls(model=model, **kwargs)
        loaded.label = f"{model.config.name}-magenta"
        loaded.source = source
        return loaded

    def under_each_decoding(self, play: Callable[[], np.ndarray]) -> dict[str, np.ndarray]:
        """What `play` (a call of this model's) returns under each of DECODINGS, per-hit first;
        the model keeps its own decoding afterwards."""
        chosen, played = self.decoding, {}
        try:
            for decoding in DECODINGS:
                self.decoding = decoding
                played[decoding] = play()
        finally:
            self.decoding = chosen
        return played

    @property
    def window_steps(self) -> int:
        """Steps of one window the model reads and writes: 64 for 4 bars, 32 for 2."""
        return self.config.model.max_seq_len

    # --- arrays ------------------------------------------------------------------------------

    def sample_grooves(
        self,
        n: int,
        temperature: float = DEFAULT_TEMPERATURE,
        seed: int | None = None,
        controls: np.ndarray | None = None,
    ) -> np.ndarray:
        """n grooves from z ~ N(0, I); temperature scales the hit logits (spec §5) and, in
        per-hit decoding, the spread of velocities and offsets.

        Returns:
          (n, steps, 27) float32.
        """
        z = np.random.default_rng(seed).standard_normal((n, self.config.model.z_size))
        return self.decode_grooves(z.astype(np.float32), temperature, seed, controls)

    def decode_grooves(
        self,
        z: np.ndarray,
        temperature: float = DEFAULT_TEMPERATURE,
        seed: int | None = None,
        controls: np.ndarray | None = None,
        hits: np.ndarray | None = None,
    ) -> np.ndarray:
        """The sampling decoder from given codes, in batches of 512.

        Args:
          z: (n, z_size) float latent codes.
          controls: (n, steps, 9) hits for a hits-conditioned model.
          hits: (n, steps, 9) hits the decoder plays instead of drawing its own; it writes
            their velocities and offsets (humanize and groove transfer keep every hit this way).

        Returns:
          (n, steps, 27) float32 grooves [hits (0/1) | velocities | offsets].
        """
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.config.model.z_size:
            raise SampleError(f"z must be (n, {self.config.model.z_size}), got shape {z.shape}")
        batches = []
        for i, begin in enumerate(range(0, len(z), DECODE_BATCH)):
            rows = slice(begin, begin + DECODE_BATCH)
            batch_seed = None if seed is None else seed + i
            grooves = self.model.decode(
                z[rows],
                temperature,
                batch_seed,
                controls=None if controls is None else controls[rows],
                hits=None if hits is None else hits[rows],
                decoding=self.decoding,
                residuals=self.residuals.array(),
            )
            batches.append(np.asarray(grooves, np.float32))
        empty = np.zeros((0, self.window_steps, GROOVE_DEPTH), np.float32)
        return np.concatenate(batches) if batches else empty

    def windows(self, sequence: note_seq.NoteSequence, where: str = "sequence") -> Windows:
        """A groove of any number of 4/4 bars at one tempo, cut into the model's windows.

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

    def posterior(self, grooves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) of (n, steps, 27) converter outputs, through the config's encoder inputs
        (hits only for humanize models, the tapped line for tap models) and controls."""
        rng = self._encoder_converter.rng  # note dropout draws from the converter's stream
        inputs = encoder_inputs(grooves, self.config.converter, rng)
        mu, sigma = self.model.encode(inputs, self.model.controls_of(grooves))
        return np.asarray(mu, np.float32), np.asarray(sigma, np.float32)

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
        """Posterior of every window of each sequence (one per sequence of up to one window).

        Args:
          note_sequences: drum NoteSequences of any number of 4/4 bars, each at one tempo; a
            last part shorter than a window is looped to fill it.
          seed: for the posterior sample z.

        Returns:
          (z, mu, sigma), each (windows, z_size) float32; z = mu + sigma * eps, a fresh sample.

        Raises:
          SampleError: a sequence not in 4/4, with several tempos or without drum notes.
        """
        grooves = [self.windows(s, f"sequence {i}").grooves for i, s in enumerate(note_sequences)]
        mu, sigma = self.posterior(np.concatenate(grooves))
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
        qpm: float | None = None,
    ) -> list[note_seq.NoteSequence]:
        """num_steps grooves on the slerp between the two posterior means (spec §5).

        Grooves longer than a window go window by window: every step has the start groove's
        length, window i of the start heading to window i of the end (the end's windows taken
        in turn again when it is shorter). Steps play at `qpm`, the start groove's tempo by
        default.
        """
        ends = [self.windows(s, name) for s, name in ((start, "start"), (end, "end"))]
        _, mu, _ = self.encode([start, end], seed=seed)
        n = len(ends[0].grooves)
        mu_start, mu_end = mu[:n], cycle(mu[n:], n)
        ts = np.linspace(0.0, 1.0, num_steps)
        z = np.stack([slerp(a, b, t) for t in ts for a, b in zip(mu_start, mu_end)])
        grooves = self.decode_grooves(z, temperature, seed)
        grooves = grooves.reshape(num_steps, n, self.window_steps, -1)
        steps = np.stack([stitch(g, ends[0].bars) for g in grooves])
        return self.grooves_to_note_sequences(steps, qpm or ends[0].qpm)


def own_residuals(folder: Path | None) -> tuple[HitResiduals, str]:
    """The HitResiduals kept in a run or bundle `folder`, else the bundled groovae_4bar's (for
    Magenta's checkpoints, exports read back and runs from before runs measured them), with a
    few words saying which."""
    residuals = HitResiduals.read(folder) if folder is not None else None
    if residuals is not None:
        return residuals, f"measured on {residuals.hits:,} hits of its training windows"
    residuals = HitResiduals.read(PRETRAINED_DIR / "groovae_4bar")
    if residuals is None:
        raise SampleError(f"{PRETRAINED_DIR / 'groovae_4bar' / HitResiduals.FILE} is missing")
    return residuals, "the bundled groovae_4bar's (this model has none of its own)"


def pick_model(
    verb_or_config: str,
    models: str | os.PathLike | None = None,
    outputs_dir: str | os.PathLike = OUTPUTS_DIR,
    root: str | os.PathLike = PRETRAINED_DIR,
) -> TrainedModel:
    """Which model plays: the one answer for 03, the verbs and the pipeline.

    Args:
      verb_or_config: a verb of VERB_CONFIGS (its config plays) or a config name.
      models: None: your run of that config under outputs_dir/runs/<config> (for sample and
        interpolate the newest run of any unconditioned config), else its bundled model;
        "bundled": the bundled model; "magenta": Magenta's released checkpoint (downloaded once);
        a folder: your run there, or a Magenta TF1 or magenta-js checkpoint.
      outputs_dir, root: where runs and bundles live.

    Returns:
      The model; its `source` says in one line which it is and why.

    Raises:
      SampleError: nothing of that kind here, with what to do.
    """
    config_name = VERB_CONFIGS.get(verb_or_config, verb_or_config)
    if models == "magenta":
        return TrainedModel.magenta(config_name)
    if models not in (None, "bundled"):
        folder = Path(models)
        if (folder / "weights_manifest.json").exists():  # magenta-js: its config.json says
            return TrainedModel.magenta(folder)
        if not (folder / "config.json").exists():  # a TF1 checkpoint: the verb's config
            return TrainedModel.magenta(folder, config_name)
        return TrainedModel(folder)
    if models is None:
        run = _your_run(verb_or_config, config_name, outputs_dir)
        if run is not None:
            return TrainedModel(run)
    if config_name not in bundled_names(root):
        raise SampleError(
            f"no {config_name} model: none is bundled and you have no run of it under "
            f"{constants.runs_dir(outputs_dir)}; train one (python -m helpers.train --config "
            f"{config_name} --run-dir {constants.run_dir(outputs_dir, config_name)}) or pick "
            'MODELS = "magenta" in Colab'
        )
    model = TrainedModel.pretrained(config_name, root)
    if models is None:
        model.source += f"; no {config_name} run of yours under {constants.runs_dir(outputs_dir)}"
    return model


def _your_run(verb: str, config_name: str, outputs_dir) -> Path | None:
    """Your run that plays `verb`: of its config, or for sampling the newest unconditioned."""
    own = constants.run_dir(outputs_dir, config_name)
    if latest_checkpoint(own) is not None:
        return own
    if verb not in ("sample", "interpolate"):
        return None
    try:
        return find_run(outputs_dir, unconditioned=True)
    except RunError:
        return None
