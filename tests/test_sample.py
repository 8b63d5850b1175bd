"""Tests for helpers/sample.py: sequence plumbing on a fake model, then the real tiny GrooVAE."""

import shutil

import note_seq
import numpy as np
import pytest
from conftest import random_grooves

from helpers import runs, sample, tools, windowing
from helpers import train as training
from helpers.bundles import PRETRAINED_DIR
from helpers.config import get_config
from helpers.constants import DEFAULT_QPM, HITS, OFFSETS, VELOCITIES
from helpers.model import HitResiduals

BAR = 2.0  # seconds per 4/4 bar at 120 qpm
FOUR_BARS = 16 * 60.0 / DEFAULT_QPM  # seconds of one decoded groove


class FakeModel:
    """Records what it is asked; encode gives mu from the input, decode a fixed groove."""

    def __init__(self, config, groove=None):
        self.config = config
        self.groove = np.zeros((64, 27), np.float32) if groove is None else groove
        self.inputs, self.decoded = [], []

    def encode(self, inputs, controls=None):
        self.inputs.append(np.array(inputs))
        z_size = self.config.model.z_size
        mu = inputs.sum(axis=(1, 2))[:, None] + np.arange(z_size, dtype=np.float32)
        return mu, np.full_like(mu, 0.5)

    def controls_of(self, grooves):
        return None  # no hits_as_controls

    def decode(self, z, temperature=1.0, seed=None, controls=None, hits=None, **decoding):
        self.decoded.append((np.array(z), temperature, seed))
        return np.repeat(self.groove[None], len(z), axis=0)


def _four_bars(make_drums, qpm=120.0, **kwargs):
    """Kick on every downbeat of 4 bars at `qpm`, snare on beat 2 of bar 1."""
    bar = 4 * 60.0 / qpm
    notes = [(36, 100, i * bar, i * bar + 0.1) for i in range(4)]
    notes.append((38, 90, bar / 4, bar / 4 + 0.1))
    return make_drums(notes, qpm=qpm, **kwargs)


@pytest.fixture
def fake(tiny_config):
    return sample.TrainedModel(model=FakeModel(tiny_config))


def test_set_tempo_scales_times_and_adds_4_4(make_drums):
    ns = make_drums([(36, 100, 1.0, 1.125)], time_signature=None)
    out = windowing.set_tempo(ns, 90.0)
    np.testing.assert_allclose(
        [out.notes[0].start_time, out.notes[0].end_time],
        [1.0 * 120 / 90, 1.125 * 120 / 90],
        rtol=1e-12,
    )
    assert [t.qpm for t in out.tempos] == [90.0]
    assert [(t.numerator, t.denominator) for t in out.time_signatures] == [(4, 4)]
    np.testing.assert_allclose(out.total_time, 16 * 60 / 90, rtol=1e-12)
    assert ns.notes[0].start_time == 1.0 and not ns.time_signatures  # input untouched


def test_sample_decodes_prior_codes_with_seed_and_temperature(fake):
    sequences = fake.sample(3, temperature=0.7, seed=11)
    z, temperature, seed = fake.model.decoded[0]
    np.testing.assert_allclose(z, np.random.default_rng(11).standard_normal((3, 8)), rtol=1e-6)
    assert (temperature, seed, len(sequences)) == (0.7, 11, 3)


def test_decode_groove_becomes_notes_at_qpm(tiny_config):
    groove = np.zeros((64, 27), np.float32)
    groove[16, 0], groove[16, VELOCITIES.start], groove[16, OFFSETS.start] = 1, 100 / 127, 0.4
    model = sample.TrainedModel(model=FakeModel(tiny_config, groove))
    (ns,) = model.decode(np.zeros((1, 8)), qpm=60.0)
    step = 60 / 60 / 4
    assert [(n.pitch, n.velocity, n.is_drum) for n in ns.notes] == [(36, 100, True)]
    np.testing.assert_allclose(ns.notes[0].start_time, (16 - 0.2) * step, rtol=1e-6)
    assert ns.tempos[0].qpm == 60.0


def test_decode_wrong_z_size_raises(fake):
    with pytest.raises(sample.SampleError, match=r"\(n, 8\)"):
        fake.decode(np.zeros((2, 5)))


def test_encode_returns_posterior_sample(fake, make_drums):
    z, mu, sigma = fake.encode([_four_bars(make_drums)], seed=3)
    eps = np.random.default_rng(3).standard_normal((1, 8))
    np.testing.assert_allclose(z, mu + sigma * eps, rtol=1e-6)
    assert fake.model.inputs[0].shape == (1, 64, 27)


def test_encode_reads_any_single_tempo(fake, make_drums):
    fake.encode([_four_bars(make_drums, qpm=93.0)])
    hits = fake.model.inputs[0][0][:, HITS]
    assert hits[[0, 16, 32, 48], 0].all() and hits[4, 1] == 1 and hits.sum() == 5


@pytest.mark.parametrize(
    "notes, kwargs, message",
    [
        ([(36, 100, 0.0, 0.1)] * 2, {"time_signature": (3, 4)}, "not 4/4"),
        ([], {}, "no drum notes"),
        ([(100, 100, 0.0, 0.1)], {}, "no notes"),  # pitch outside the drum map
    ],
)
def test_encode_rejects_what_is_not_a_4_4_groove(fake, make_drums, notes, kwargs, message):
    ns = make_drums(notes, **kwargs)
    ns.filename = "mine.mid"
    with pytest.raises(sample.SampleError, match=f"sequence 0 \\(mine.mid\\).*{message}"):
        fake.encode([ns])


def test_encode_reads_only_the_drum_channel(fake, make_drums):
    ns = _four_bars(make_drums)
    ns.notes.add(pitch=38, velocity=100, start_time=1.0, end_time=1.1, is_drum=False)
    fake.encode([ns])
    assert fake.model.inputs[0][0][:, HITS].sum() == 5
    for note in ns.notes:
        note.is_drum = False
    with pytest.raises(sample.SampleError, match="no drum notes"):
        fake.encode([ns])


def _kicks(make_drums, bars, qpm=120.0):
    """A kick on every downbeat of `bars` bars, the bar's number as its velocity."""
    bar = 4 * 60.0 / qpm
    return make_drums([(36, 10 + b, b * bar, b * bar + 0.1) for b in range(bars)], qpm=qpm)


@pytest.mark.parametrize("bars, windows", [(1, 1), (2, 1), (3, 1), (4, 1), (16, 4), (17, 5)])
def test_encode_any_length_gives_one_row_per_window(fake, make_drums, bars, windows):
    z, mu, sigma = fake.encode([_kicks(make_drums, bars)])
    assert z.shape == mu.shape == sigma.shape == (windows, 8)
    inputs = fake.model.inputs[0]
    assert inputs.shape == (windows, 64, 27)
    # Every window is full: a short last part is looped, so each bar starts with a kick.
    assert inputs[:, ::16, 0].all()


def test_encode_loops_a_2_bar_groove_and_windows_a_17_bar_one(fake, make_drums):
    fake.encode([_kicks(make_drums, 2), _kicks(make_drums, 17)])
    inputs = fake.model.inputs[0]
    velocities = np.round(inputs[:, ::16, VELOCITIES.start] * 127).astype(int)
    assert velocities[0].tolist() == [10, 11, 10, 11]
    assert velocities[1:5].ravel().tolist() == list(range(10, 26))
    assert velocities[5].tolist() == [26, 26, 26, 26]


class _EchoModel(FakeModel):
    """Decodes each code back to the window it came from, so stitching can be checked."""

    def encode(self, inputs, controls=None):
        self.windows = np.array(inputs)
        z = np.arange(len(inputs), dtype=np.float32)[:, None] * np.ones(self.config.model.z_size)
        return z, np.full_like(z, 1e-6)

    def controls_of(self, grooves):
        return None  # no hits_as_controls

    def decode(self, z, temperature=1.0, seed=None, controls=None, hits=None, **decoding):
        return self.windows[np.round(z[:, 0]).astype(int)]


@pytest.mark.parametrize("bars, qpm", [(1, 120.0), (2, 90.0), (16, 135.0), (17, 100.0)])
def test_reencode_keeps_length_tempo_and_notes(tiny_config, make_drums, bars, qpm):
    model = sample.TrainedModel(model=_EchoModel(tiny_config))
    ns = _kicks(make_drums, bars, qpm)
    out = tools.reencode(model, ns)
    bar = 4 * 60 / qpm
    assert [t.qpm for t in out.tempos] == [qpm]
    assert [(t.numerator, t.denominator) for t in out.time_signatures] == [(4, 4)]
    np.testing.assert_allclose(out.total_time, bars * bar)
    assert [(n.pitch, n.velocity) for n in out.notes] == [(36, 10 + b) for b in range(bars)]
    np.testing.assert_allclose([n.start_time for n in out.notes], np.arange(bars) * bar, atol=1e-6)


def test_encode_two_tempos_rejected(fake, make_drums):
    ns = _four_bars(make_drums)
    ns.tempos.add(qpm=100.0, time=3.0)
    with pytest.raises(sample.SampleError, match="multiple tempos"):
        fake.encode([ns])


def test_encode_infer_map_surprise_and_eval_mode(tiny_config, make_drums):
    # GMD's pitch 45 is a mid tom in training (ROLAND) but a low tom in Magenta's infer map.
    ns = _four_bars(make_drums)
    ns.notes.add(pitch=45, velocity=80, start_time=0.5, end_time=0.6, is_drum=True)
    classes = {}
    for mode in ("infer", "eval"):
        model = sample.TrainedModel(model=FakeModel(tiny_config), encode_mode=mode)
        model.encode([ns])
        hits = model.model.inputs[0][0][:, HITS]
        classes[mode] = int(np.flatnonzero(hits[4, 2:])[0]) + 2
    assert classes == {"infer": 4, "eval": 5}


def test_slerp_endpoints_and_midpoint():
    a, b = np.array([2.0, 0.0]), np.array([0.0, 2.0])
    np.testing.assert_allclose(sample.slerp(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(sample.slerp(a, b, 1.0), b, atol=1e-12)
    np.testing.assert_allclose(sample.slerp(a, b, 0.5), [np.sqrt(2), np.sqrt(2)], rtol=1e-12)
    np.testing.assert_allclose(sample.slerp(a, 3 * a, 0.5), 2 * a, rtol=1e-12)  # parallel


def test_interpolate_slerps_between_the_means(fake, make_drums):
    start = _four_bars(make_drums)
    end = _four_bars(make_drums)
    end.notes.add(pitch=42, velocity=127, start_time=0.0, end_time=0.1, is_drum=True)
    sequences = fake.interpolate(start, end, num_steps=5, temperature=0.3)
    _, mu, _ = fake.encode([start, end])
    z, temperature, _ = fake.model.decoded[-1]
    assert len(sequences) == 5 and temperature == 0.3
    np.testing.assert_allclose(z[0], mu[0], rtol=1e-6)
    np.testing.assert_allclose(z[-1], mu[1], rtol=1e-6)
    np.testing.assert_allclose(z[2], sample.slerp(mu[0], mu[1], 0.5), rtol=1e-6)


def test_interpolate_long_start_walks_each_window_to_the_end(fake, make_drums):
    start, end = _kicks(make_drums, 6, qpm=90.0), _four_bars(make_drums)
    sequences = fake.interpolate(start, end, num_steps=3)
    _, mu, _ = fake.encode([start, end])
    z, _, _ = fake.model.decoded[-1]
    assert z.shape == (3 * 2, 8)  # 3 steps of 2 windows each
    np.testing.assert_allclose(z[:2], mu[:2], rtol=1e-6)
    np.testing.assert_allclose(z[4:], mu[[2, 2]], rtol=1e-6)  # the 1-window end, taken twice
    for ns in sequences:
        assert ns.tempos[0].qpm == 90.0 and np.isclose(ns.total_time, 6 * 4 * 60 / 90)


def test_humanize_encoder_sees_hits_only(make_drums):
    model = sample.TrainedModel(model=FakeModel(get_config("tiny", humanize=True)))
    ns = _four_bars(make_drums, qpm=100.0)
    out = tools.humanize(model, ns)
    inputs = model.model.inputs[0][0]
    assert inputs[:, HITS].sum() == 5 and not inputs[:, VELOCITIES].any()
    assert not inputs[:, OFFSETS].any() and out.tempos[0].qpm == 100.0


def test_humanize_needs_a_humanize_run(fake, make_drums):
    with pytest.raises(sample.SampleError, match="cannot humanize"):
        tools.humanize(fake, _four_bars(make_drums))


def test_drumify_any_pitch_becomes_one_tapped_line(make_drums):
    model = sample.TrainedModel(model=FakeModel(get_config("tiny", tapify=True)))
    taps = make_drums([(60 + i, 100, i * BAR, i * BAR + 0.1) for i in range(4)])
    for note in taps.notes:
        note.is_drum = False  # a melody, not drums
    tools.drumify(model, taps)
    hits = model.model.inputs[0][0][:, HITS]
    assert hits[[0, 16, 32, 48], 3].all() and hits.sum() == 4
    assert taps.notes[0].pitch == 60  # input untouched


def test_drumify_needs_a_tap_run(fake, make_drums):
    with pytest.raises(sample.SampleError, match="cannot drumify"):
        tools.drumify(fake, _four_bars(make_drums))


def test_load_midi_bad_files_raise_one_clear_error(tmp_path):
    (tmp_path / "bad.mid").write_bytes(b"not a midi file")
    for path in (tmp_path / "bad.mid", tmp_path / "missing.mid"):
        with pytest.raises(windowing.WindowingError, match=f"cannot read .*{path.name} as MIDI"):
            windowing.load_midi(path)


def test_load_midi_reads_back_a_written_groove(tmp_path, make_drums):
    path = tmp_path / "groove_01.mid"
    note_seq.sequence_proto_to_midi_file(_four_bars(make_drums), str(path))
    assert len(windowing.load_midi(path).notes) == 5


@pytest.fixture(scope="module")
def tiny_groovae():
    import keras

    from helpers.model import GrooVAE

    keras.utils.set_random_seed(0)
    return sample.TrainedModel(model=GrooVAE(get_config("tiny")))


def test_sample_grooves_real_tiny_model_seeded_and_in_range(tiny_groovae):
    grooves = tiny_groovae.sample_grooves(3, temperature=1.0, seed=5)
    np.testing.assert_array_equal(grooves, tiny_groovae.sample_grooves(3, temperature=1.0, seed=5))
    assert grooves.shape == (3, 64, 27) and grooves.dtype == np.float32
    assert set(np.unique(grooves[..., HITS])) <= {0.0, 1.0}
    assert grooves[..., VELOCITIES].min() >= 0 and grooves[..., VELOCITIES].max() <= 1
    assert np.abs(grooves[..., OFFSETS]).max() <= 1
    assert not np.array_equal(grooves, tiny_groovae.sample_grooves(3, temperature=1.0, seed=6))


def test_sample_real_tiny_model_notes_match_hits(tiny_groovae):
    grooves = tiny_groovae.sample_grooves(2, temperature=1.0, seed=1)
    sequences = tiny_groovae.sample(2, temperature=1.0, seed=1, qpm=140)
    for groove, ns in zip(grooves, sequences):
        assert len(ns.notes) == groove[:, HITS].sum()
        assert ns.tempos[0].qpm == 140 and max(n.start_time for n in ns.notes) < 16 * 60 / 140


def test_encode_real_tiny_model_posterior_shapes(tiny_groovae, make_drums):
    z, mu, sigma = tiny_groovae.encode([_four_bars(make_drums)] * 2, seed=0)
    assert z.shape == mu.shape == sigma.shape == (2, 8) and (sigma > 0).all()
    np.testing.assert_allclose(mu[0], mu[1], rtol=1e-6)


def test_trained_model_finds_newest_run(tiny_run):
    model = sample.TrainedModel(outputs_dir=tiny_run.parents[1])
    assert model.run_dir == tiny_run and model.config.name == "tiny"
    assert len(model.sample(2, seed=0)) == 2


def test_find_run_without_runs_raises(tmp_path):
    with pytest.raises(runs.RunError, match="no trained run"):
        runs.find_run(tmp_path)


def test_grooves_at_a_tempo_play_back_to_back(tiny_run):
    """03 plays an interpolation's steps one after another: each groove lasts its 4 bars."""
    qpm = 100.0
    groovae = sample.TrainedModel(tiny_run)
    sequences = groovae.grooves_to_note_sequences(random_grooves(3, seed=5), qpm)
    joined = note_seq.sequences_lib.concatenate_sequences(sequences)
    four_bars = 16 * 60.0 / qpm
    np.testing.assert_allclose(joined.total_time, sum(s.total_time for s in sequences), rtol=1e-9)
    np.testing.assert_allclose(joined.total_time, 3 * four_bars, rtol=1e-9)
    expected = sorted(
        (i * four_bars + n.start_time, n.pitch) for i, s in enumerate(sequences) for n in s.notes
    )
    got = sorted((n.start_time, n.pitch) for n in joined.notes)
    assert [p for _, p in got] == [p for _, p in expected]
    np.testing.assert_allclose([t for t, _ in got], [t for t, _ in expected], atol=1e-9)


@pytest.mark.parametrize("variant", ["humanize", "tapify", "hits_as_controls"])
def test_variant_runs_turn_a_score_into_a_groove(variant, tmp_path):
    """The path of 03's tool sections, on tiny runs of each variant, found by pick_model."""
    grooves = random_grooves(32)
    name = {"humanize": "groovae_2bar_humanize", "tapify": "groovae_2bar_tap_fixed_velocity"}
    name = name.get(variant, "groovae_2bar_hits_control_tfds")
    run_dir = tmp_path / "runs" / name
    config = get_config("tiny", name=name, **{variant: True})
    windows, options = (grooves, grooves[:16]), training.TrainOptions(progress=False)
    training.train(config, run_dir, steps=2, windows=windows, options=options)
    verb = "drumify" if variant == "tapify" else "humanize"
    groovae = sample.pick_model(name, outputs_dir=tmp_path)
    assert groovae.run_dir == run_dir and groovae.source.startswith("your run")
    score = groovae.grooves_to_note_sequences(grooves[:1])[0]
    played = tools.TOOLS[verb](groovae, score, temperature=0.5, seed=0)
    assert played.notes, f"{variant} played no notes"
    early = FOUR_BARS / 64 / 2  # a first note may be played up to half a 16th early
    assert all(n.is_drum and -early <= n.start_time < FOUR_BARS for n in played.notes)
    if variant == "hits_as_controls":  # the hit-keeping humanize: exactly the score's hits
        kept = sorted((round(n.start_time / (FOUR_BARS / 64)), n.pitch) for n in played.notes)
        given = sorted((round(n.start_time / (FOUR_BARS / 64)), n.pitch) for n in score.notes)
        assert len(played.notes) == len(score.notes)
        assert [p for _, p in kept] == [p for _, p in given]


def test_a_model_draws_from_its_own_residuals_else_the_bundled_groovae_4bars(tiny_run, tmp_path):
    run = sample.TrainedModel(tiny_run)  # train() measured them as the run ended
    assert run.residuals == HitResiduals.read(tiny_run) and "measured on" in run.residuals_source
    assert run.decoding == "per_hit"
    bare = tmp_path / "tiny"
    shutil.copytree(tiny_run, bare)
    (bare / HitResiduals.FILE).unlink()
    fallback = sample.TrainedModel(bare, decoding="magenta")
    assert fallback.residuals == HitResiduals.read(PRETRAINED_DIR / "groovae_4bar")
    assert "bundled groovae_4bar" in fallback.residuals_source and fallback.decoding == "magenta"
    with pytest.raises(sample.SampleError, match="per_hit, magenta"):
        sample.TrainedModel(tiny_run, decoding="loud")


def test_under_each_decoding_plays_both_and_keeps_the_models_own(tiny_run):
    model = sample.TrainedModel(tiny_run, decoding="magenta")
    z = np.zeros((2, model.config.model.z_size), np.float32)
    played = model.under_each_decoding(lambda: model.decode_grooves(z, 1.0, seed=3))
    assert list(played) == ["per_hit", "magenta"] and model.decoding == "magenta"
    np.testing.assert_array_equal(played["magenta"], model.decode_grooves(z, 1.0, seed=3))
    assert not np.array_equal(played["per_hit"], played["magenta"])
