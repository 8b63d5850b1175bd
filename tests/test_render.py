"""Tests for helpers/render.py: pianorolls, PNG files, the notebooks' plots, inline players."""

import wave

import matplotlib
import note_seq
import numpy as np
import pytest

from helpers import render, sample, tools

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

from helpers import audio, notebook
from helpers.constants import HITS, OFFSETS, VELOCITIES


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
    with pytest.raises(render.RenderError, match=r"\(16 \* bars, 27\)"):
        render.plot_groove(np.zeros((30, 27)))


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


def test_audio_player_wraps_audio(monkeypatch, make_drums):
    monkeypatch.setattr(audio, "_load_fluidsynth", lambda: None)
    player = render.audio_player(make_drums([(36, 100, 0.0, 0.1)]), sample_rate=8000)
    assert player.data[:4] == b"RIFF"


def test_plot_tempo_histogram_and_style_counts():
    info = pd.DataFrame(
        {"bpm": [90, 92, 120, 121, 140], "style": ["funk/a", "funk/b", "rock", "jazz/x", "rock/y"]}
    )
    fig = notebook.plot_tempo_histogram(info)
    assert sum(p.get_height() for p in fig.axes[0].patches) == 5
    fig = notebook.plot_style_counts(info)
    widths = {
        t.get_text(): p.get_width()
        for t, p in zip(fig.axes[0].get_yticklabels(), fig.axes[0].patches)
    }
    assert widths == {"jazz": 1, "funk": 2, "rock": 2}


def test_plot_training_curves_reads_train_history_csv(tmp_path):
    # train.py's layout: one row per (step, split), Magenta's "losses/..." names.
    history = pd.DataFrame(
        {
            "step": [10, 20, 20, 30],
            "split": ["train", "train", "validation", "train"],
            "loss": [3.0, 2.0, 2.5, 1.5],
            "losses/r_loss": [2.0, 1.5, 2.0, 1.0],
            "losses/kl_bits": [10, 30, 35, 50],
            "metrics/hits_loss": [np.nan, np.nan, 0.3, np.nan],
        }
    )
    history.to_csv(tmp_path / "history.csv", index=False)
    fig = render.plot_training_curves(tmp_path / "history.csv", free_bits=48)
    assert [ax.get_title() for ax in fig.axes] == [
        "loss",
        "r_loss",
        "kl_bits",
        "per-timestep losses",
    ]
    kl_lines = {line.get_label(): line for line in fig.axes[2].lines}
    np.testing.assert_allclose(kl_lines["free bits"].get_ydata(), [48, 48])
    np.testing.assert_allclose(kl_lines["train"].get_xdata(), [10, 20, 30])
    np.testing.assert_allclose(kl_lines["validation"].get_ydata(), [35])
    assert [line.get_label() for line in fig.axes[3].lines] == ["hits_loss (validation)"]


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


def test_plot_groove_draws_a_sequence_to_its_last_bar(make_drums):
    one_bar = render.note_sequence_to_groove(make_drums([(36, 100, 0.5, 0.6)]))
    assert one_bar.shape == (16, 27) and one_bar[:, HITS].sum() == 1 and one_bar[4, 0] == 1
    six_bars = render.note_sequence_to_groove(make_drums([(36, 100, 10.5, 10.6)]))
    assert six_bars.shape == (96, 27)  # a note in bar 6 at 120 qpm


def test_plot_groove_sequence_in_3_4_raises(make_drums):
    with pytest.raises(render.RenderError, match="4/4"):
        render.plot_groove(make_drums([(36, 100, 0.0, 0.1)], time_signature=(3, 4)))


def test_audio_player_accepts_groove_array(monkeypatch):
    monkeypatch.setattr(audio, "_load_fluidsynth", lambda: None)
    player = render.audio_player(_groove([(0, 0, 1.0, 0.0), (63, 1, 1.0, 0.0)]), sample_rate=8000)
    # 120 qpm: the last note starts at 63 * 0.125 s and lasts a step, then the tail
    n_frames = (len(player.data) - 44) // 2
    assert n_frames == int((64 * 0.125 + audio.TAIL_SECONDS) * 8000)


# ------------------------------------------------------------------------------------------
# Tests for helpers/render.py: grooves as MIDI, PNG and WAV, and the one overwrite rule.


@pytest.fixture(scope="module")
def groovae(tiny_run):
    return sample.TrainedModel(tiny_run)


def _two_grooves(make_drums):
    """Two 4-bar grooves: a kick on every downbeat, then a snare on every backbeat."""
    kicks = make_drums([(36, 100, bar * 2.0, bar * 2.0 + 0.1) for bar in range(4)])
    snares = make_drums([(38, 90, beat * 0.5, beat * 0.5 + 0.1) for beat in range(1, 16, 2)])
    return [kicks, snares]


def _four_bars(make_drums):
    """Kick on every downbeat of 4 bars at 120 qpm, snare on beat 2 of bar 1: 5 notes."""
    notes = [(36, 100, i * 2.0, i * 2.0 + 0.1) for i in range(4)]
    return make_drums(notes + [(38, 90, 0.5, 0.6)])


def test_save_grooves_writes_midi_png_and_wav_per_groove(tmp_path, make_drums):
    sequences = _two_grooves(make_drums)
    paths = render.save_grooves(sequences, tmp_path / "out")
    assert [p.name for p in paths] == ["groove_01.mid", "groove_02.mid"]
    for path, sequence in zip(paths, sequences):
        back = note_seq.midi_file_to_note_sequence(str(path))
        assert sorted(n.pitch for n in back.notes) == sorted(n.pitch for n in sequence.notes)
        assert path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with wave.open(str(path.with_suffix(".wav"))) as audio:
            assert audio.getnchannels() == 1 and audio.getnframes() > audio.getframerate()
    assert len(list((tmp_path / "out").iterdir())) == 6


def test_save_grooves_existing_midi_refused_and_nothing_written(tmp_path, make_drums):
    (tmp_path / "groove_02.mid").write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="groove_02.mid"):
        render.save_grooves(_two_grooves(make_drums), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["groove_02.mid"]
    assert (tmp_path / "groove_02.mid").read_bytes() == b"keep"


def test_save_grooves_existing_wav_refused_and_nothing_written(tmp_path, make_drums):
    (tmp_path / "groove_02.wav").write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="groove_02.wav"):
        render.save_grooves(_two_grooves(make_drums), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["groove_02.wav"]


def test_write_samples_seeded_reuses_its_folder(groovae, tmp_path):
    grooves, _, paths = tools.write_samples(groovae, num=2, seed=3, outputs_dir=tmp_path)
    folder = paths[0].parent
    assert folder.parent == tmp_path / "samples" and "-seed3-" in folder.name
    written = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert len(written) == 6  # .mid, .png and .wav per groove
    again, _, paths_again = tools.write_samples(groovae, num=2, seed=3, outputs_dir=tmp_path)
    assert paths_again == paths
    np.testing.assert_array_equal(again, grooves)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == written


def test_write_samples_unseeded_takes_new_numbered_folders(groovae, tmp_path):
    first = tools.write_samples(groovae, num=1, outputs_dir=tmp_path)[2][0].parent
    second = tools.write_samples(groovae, num=1, outputs_dir=tmp_path)[2][0].parent
    assert first.name.endswith("-001") and second.name.endswith("-002")
    assert first.name[:-4] == second.name[:-4] and first.parent == second.parent
    assert all(len(list(folder.iterdir())) == 3 for folder in (first, second))


def test_save_grooves_midi_only_numbers_files_and_refuses_to_overwrite(tmp_path, make_drums):
    sequences = [_four_bars(make_drums) for _ in range(3)]
    midi_only = {"suffixes": (".mid",)}
    paths = render.save_grooves(sequences, tmp_path / "out", **midi_only)
    assert [p.name for p in paths] == ["groove_01.mid", "groove_02.mid", "groove_03.mid"]
    back = note_seq.midi_file_to_note_sequence(str(paths[0]))
    assert len(back.notes) == 5
    (tmp_path / "out" / "groove_02.mid").write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="groove_01.mid"):
        render.save_grooves(sequences, tmp_path / "out", **midi_only)
    assert (tmp_path / "out" / "groove_02.mid").read_bytes() == b"keep"
    render.save_grooves(sequences, tmp_path / "out", overwrite=True, **midi_only)
    assert sorted(p.suffix for p in (tmp_path / "out").iterdir()) == [".mid"] * 3


def test_save_grooves_more_than_99_get_wider_numbers(tmp_path, make_drums):
    paths = render.save_grooves([_four_bars(make_drums)] * 100, tmp_path, suffixes=(".mid",))
    assert paths[0].name == "groove_001.mid" and paths[-1].name == "groove_100.mid"


def test_write_samples_adds_only_missing_audio(groovae, tmp_path):
    _, _, paths = tools.write_samples(groovae, num=2, seed=3, outputs_dir=tmp_path)
    midi_before = paths[0].read_bytes()
    paths[1].with_suffix(".wav").unlink()
    tools.write_samples(groovae, num=2, seed=3, outputs_dir=tmp_path)
    assert paths[1].with_suffix(".wav").exists() and paths[0].read_bytes() == midi_before


def test_save_grooves_hands_the_soundfont_to_the_synthesizer(tmp_path, make_drums, monkeypatch):
    fonts = []
    real = render.audio.synthesize

    def recording(sequence, sample_rate=22050, soundfont=None):
        fonts.append(soundfont)
        return real(sequence, sample_rate, soundfont)

    monkeypatch.setattr(render.audio, "synthesize", recording)
    render.save_grooves(_two_grooves(make_drums), tmp_path, soundfont=tmp_path / "kit.sf2")
    assert fonts == [tmp_path / "kit.sf2"] * 2
