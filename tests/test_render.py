"""Tests for helpers/render.py: pianorolls, audio with and without FluidSynth, files, plots."""

import logging
import subprocess
import sys
import wave

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from helpers import render  # noqa: E402
from helpers.constants import HITS, OFFSETS, VELOCITIES  # noqa: E402
from conftest import REPO  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _groove(cells):
    """A (64, 27) groove from (step, drum, velocity01, offset) cells."""
    groove = np.zeros((64, 27), np.float32)
    for step, drum, velocity, offset in cells:
        groove[step, HITS.start + drum] = 1.0
        groove[step, VELOCITIES.start + drum] = velocity
        groove[step, OFFSETS.start + drum] = offset
    return groove


def test_plot_groove_box_shifts_left_for_early_offset():
    groove = _groove([(4, 0, 1.0, 0.5), (8, 1, 0.5, -0.5), (12, 2, 0.25, 0.0)])
    fig = render.plot_groove(groove)
    ax = fig.axes[0]
    boxes = sorted((p.get_x(), p.get_y()) for p in ax.patches)
    # box left = step - offset / 2 + 0.05 margin; rows are drum classes (box y = drum - 0.4)
    np.testing.assert_allclose(boxes, [(3.8, -0.4), (8.3, 0.6), (12.05, 1.6)], atol=1e-6)
    colours = {round(p.get_y()): p.get_facecolor() for p in ax.patches}
    assert colours[0] != colours[1] != colours[2]


def test_plot_groove_on_given_axes_draws_there():
    fig, axes = plt.subplots(1, 2)
    returned = render.plot_groove(_groove([(0, 0, 1.0, 0.0)]), ax=axes[1], colorbar=False)
    assert returned is fig
    assert len(axes[1].patches) == 1 and len(axes[0].patches) == 0


def test_plot_groove_wrong_shape_raises():
    with pytest.raises(render.RenderError, match=r"\(64, 27\)"):
        render.plot_groove(np.zeros((32, 27)))


def test_plot_grooves_one_axes_per_groove():
    grooves = np.stack([_groove([(s, 0, 1.0, 0.0)]) for s in range(3)])
    fig = render.plot_grooves(grooves, titles=["a", "b", "c"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]


def test_save_figure_refuses_to_overwrite(tmp_path):
    fig = render.plot_groove(_groove([(0, 0, 1.0, 0.0)]))
    path = render.save_figure(fig, tmp_path / "sub" / "roll.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(FileExistsError, match="overwrite=True"):
        render.save_figure(fig, path)
    render.save_figure(fig, path, overwrite=True)


def test_write_midi_round_trips_and_refuses_to_overwrite(tmp_path, make_drums):
    import note_seq

    ns = make_drums([(36, 100, 0.0, 0.125), (38, 80, 0.5, 0.625)])
    path = render.write_midi(ns, tmp_path / "g.mid")
    back = note_seq.midi_file_to_note_sequence(str(path))
    assert [(n.pitch, n.velocity) for n in back.notes] == [(36, 100), (38, 80)]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        render.write_midi(ns, path)
    render.write_midi(ns, path, overwrite=True)


@pytest.mark.parametrize("backend", ["fluidsynth", "numpy"])
def test_synthesize_onsets_where_the_notes_are(backend, monkeypatch, make_drums):
    if backend == "numpy":
        monkeypatch.setattr(render, "_load_fluidsynth", lambda: None)
    elif render._load_fluidsynth() is None or render.find_soundfont() is None:
        pytest.skip("FluidSynth or a GM soundfont is not installed")
    ns = make_drums([(36, 120, 0.0, 0.1), (38, 120, 1.0, 1.1)])
    audio = render.synthesize(ns, sample_rate=16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == pytest.approx(16000 * (1.1 + render.TAIL_SECONDS), abs=16000 * 0.01)
    np.testing.assert_allclose(np.abs(audio).max(), 0.9, atol=1e-4)
    quiet_before_snare = np.abs(audio[int(0.95 * 16000) : int(0.99 * 16000)]).max()
    loud_at_snare = np.abs(audio[16000 : int(1.05 * 16000)]).max()
    assert loud_at_snare > 4 * quiet_before_snare


def test_synthesize_fallback_warns_once(monkeypatch, make_drums, caplog):
    monkeypatch.setattr(render, "_load_fluidsynth", lambda: None)
    monkeypatch.setattr(render, "_fallback_warned", False)
    ns = make_drums([(42, 90, 0.0, 0.1)])
    with caplog.at_level(logging.WARNING, logger="helpers.render"):
        render.synthesize(ns)
        render.synthesize(ns)
    warnings = [r for r in caplog.records if "fluidsynth" in r.getMessage().lower()]
    assert len(warnings) == 1 and "apt-get install fluidsynth" in warnings[0].getMessage()


def test_synthesize_fallback_every_drum_class_sounds(monkeypatch, make_drums):
    monkeypatch.setattr(render, "_load_fluidsynth", lambda: None)
    pitches = [36, 38, 42, 46, 45, 48, 50, 49, 51]
    for pitch in pitches:
        audio = render.synthesize(make_drums([(pitch, 100, 0.0, 0.1)]), sample_rate=8000)
        assert np.all(np.isfinite(audio)) and np.abs(audio).max() == pytest.approx(0.9, abs=1e-4)


def test_synthesize_empty_sequence_is_silence(monkeypatch, make_drums):
    monkeypatch.setattr(render, "_load_fluidsynth", lambda: None)
    audio = render.synthesize(make_drums([]), sample_rate=8000)
    assert len(audio) == 8000 and not audio.any()


def test_synthesize_without_libfluidsynth_does_not_crash(tmp_path):
    # A process where ctypes finds no libfluidsynth: pyfluidsynth's import raises, we fall back.
    script = (
        "import ctypes.util; ctypes.util.find_library = lambda name: None\n"
        "from helpers import render\n"
        "import sys; sys.path.insert(0, 'tests')  # Colab's IPython has a `tests` package\n"
        "from conftest import drum_sequence\n"
        "audio = render.synthesize(drum_sequence([(36, 100, 0.0, 0.1)]), sample_rate=8000)\n"
        "assert render._fallback_warned and audio.any()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "synthetic drum kit" in done.stderr


def test_save_wav_reads_back(tmp_path):
    audio = np.sin(np.linspace(0, 100, 800)).astype(np.float32) * 0.5
    path = render.save_wav(tmp_path / "a.wav", audio, 8000)
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        back = np.frombuffer(wav.readframes(wav.getnframes()), "<i2") / 32767
    np.testing.assert_allclose(back, audio, atol=1 / 32767)
    with pytest.raises(FileExistsError):
        render.save_wav(path, audio, 8000)


def test_audio_player_wraps_audio(monkeypatch, make_drums):
    monkeypatch.setattr(render, "_load_fluidsynth", lambda: None)
    player = render.audio_player(make_drums([(36, 100, 0.0, 0.1)]), sample_rate=8000)
    assert player.data[:4] == b"RIFF"


def test_plot_tempo_histogram_and_style_counts():
    info = pd.DataFrame({"bpm": [90, 92, 120, 121, 140], "style": ["funk/a", "funk/b", "rock",
                                                                  "jazz/x", "rock/y"]})
    fig = render.plot_tempo_histogram(info)
    assert sum(p.get_height() for p in fig.axes[0].patches) == 5
    fig = render.plot_style_counts(info)
    widths = {t.get_text(): p.get_width() for t, p in zip(fig.axes[0].get_yticklabels(),
                                                          fig.axes[0].patches)}
    assert widths == {"jazz": 1, "funk": 2, "rock": 2}


def test_plot_training_curves_reads_train_history_csv(tmp_path):
    # train.py's layout: one row per (step, split), Magenta's "losses/..." names.
    history = pd.DataFrame({
        "step": [10, 20, 20, 30],
        "split": ["train", "train", "validation", "train"],
        "loss": [3.0, 2.0, 2.5, 1.5],
        "losses/r_loss": [2.0, 1.5, 2.0, 1.0],
        "losses/kl_bits": [10, 30, 35, 50],
        "metrics/hits_loss": [np.nan, np.nan, 0.3, np.nan],
    })
    history.to_csv(tmp_path / "history.csv", index=False)
    fig = render.plot_training_curves(tmp_path / "history.csv", free_bits=48)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "r_loss", "kl_bits",
                                                   "per-timestep losses"]
    kl_lines = {line.get_label(): line for line in fig.axes[2].lines}
    np.testing.assert_allclose(kl_lines["free bits"].get_ydata(), [48, 48])
    np.testing.assert_allclose(kl_lines["train"].get_xdata(), [10, 20, 30])
    np.testing.assert_allclose(kl_lines["validation"].get_ydata(), [35])
    assert [line.get_label() for line in fig.axes[3].lines] == ["hits_loss (validation)"]


def test_plot_training_curves_keras_val_columns():
    history = pd.DataFrame({"epoch": [0, 1], "loss": [2.0, 1.0], "val_loss": [2.5, 1.5]})
    fig = render.plot_training_curves(history)
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    np.testing.assert_allclose(lines["validation"].get_ydata(), [2.5, 1.5])
    np.testing.assert_allclose(lines["train"].get_xdata(), [0, 1])


def test_plot_training_curves_without_loss_columns_raises():
    with pytest.raises(render.RenderError, match="no loss columns"):
        render.plot_training_curves(pd.DataFrame({"step": [1]}))


def test_plot_groove_statistics_bar_heights_are_hit_density():
    real = np.stack([_groove([(s, 0, 0.5, 0.0) for s in range(0, 64, 4)])] * 2)
    fig = render.plot_groove_statistics({"real": real})
    heights = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(heights, [0.25] + [0.0] * 8, atol=1e-7)


def test_plot_groove_from_note_sequence_matches_array(make_drums):
    # kick on the downbeat of bar 1, snare 10 ms late on beat 2 of bar 4 (the window needs bar 4)
    ns = make_drums([(36, 127, 0.0, 0.1), (38, 64, 6.5 + 0.01, 6.6)])
    fig = render.plot_groove(ns)
    boxes = sorted((p.get_x(), p.get_y()) for p in fig.axes[0].patches)
    late = -0.01 / 0.125 * 2  # offset units: 2 * (grid - start) / step
    np.testing.assert_allclose(boxes, [(0.05, -0.4), (52 - late / 2 + 0.05, 0.6)], atol=1e-6)


def test_plot_groove_short_sequence_is_padded(make_drums):
    groove = render.note_sequence_to_groove(make_drums([(36, 100, 0.5, 0.6)]))
    assert groove.shape == (64, 27) and groove[:, HITS].sum() == 1 and groove[4, 0] == 1


def test_plot_groove_sequence_in_3_4_raises(make_drums):
    with pytest.raises(render.RenderError, match="4/4"):
        render.plot_groove(make_drums([(36, 100, 0.0, 0.1)], time_signature=(3, 4)))


def test_audio_player_accepts_groove_array(monkeypatch):
    monkeypatch.setattr(render, "_load_fluidsynth", lambda: None)
    player = render.audio_player(_groove([(0, 0, 1.0, 0.0), (63, 1, 1.0, 0.0)]), sample_rate=8000)
    # 120 qpm: the last note starts at 63 * 0.125 s and lasts a step, then the tail
    n_frames = (len(player.data) - 44) // 2
    assert n_frames == int((64 * 0.125 + render.TAIL_SECONDS) * 8000)
