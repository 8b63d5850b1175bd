"""Peak memory and time of hearing a long recording as taps (drumify's input), for 1, 10 and
30 minutes of a drum kit played at 120 bpm, each read in a fresh process."""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from conditions import run_watched

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from helpers import audio, device  # noqa: E402
from helpers.constants import MIDI_DRUM_CHANNEL  # noqa: E402

QPM = 120.0
HEAR = "from helpers import audio; import sys; t = audio.taps_from_recording(sys.argv[1]); "
HEAR += "print(len(t.notes), round(t.tempos[0].qpm, 2))"


def kit_minutes(path: Path, minutes: float) -> int:
    """A WAV of `minutes` of one bar of kick, snare and 8th hi-hats over and over.

    Returns:
      The hits played.
    """
    import note_seq

    bar = note_seq.NoteSequence()
    beat = 60.0 / QPM
    for i in range(8):
        pitch = (36, 42, 38, 42)[i % 4]
        bar.notes.add(
            pitch=pitch,
            velocity=100 if pitch != 42 else 60,
            start_time=i * beat / 2,
            end_time=i * beat / 2 + 0.05,
            instrument=MIDI_DRUM_CHANNEL,
            is_drum=True,
        )
    one_bar = audio.synthesize(bar)[: int(4 * beat * audio.DEFAULT_SAMPLE_RATE)]
    bars = int(minutes * 60 / (4 * beat))
    audio.save_wav(path, np.tile(one_bar, bars), audio.DEFAULT_SAMPLE_RATE)
    return 8 * bars


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0, 30.0])
    args = parser.parse_args(argv)
    print(f"CPU: {device.cpu_info().describe()}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as folder:
        for minutes in args.minutes:
            path = Path(folder) / f"{minutes:g}min.wav"
            played = kit_minutes(path, minutes)
            start = time.perf_counter()
            child = subprocess.Popen(
                [sys.executable, "-c", HEAR, str(path)], env=env, stdout=subprocess.PIPE, text=True
            )
            _, status, usage = os.wait4(child.pid, 0)
            seconds = time.perf_counter() - start
            heard = child.stdout.read().split()
            peak_gb = usage.ru_maxrss / 2**20  # Linux counts kilobytes
            print(
                f"{minutes:g} min ({path.stat().st_size / 2**20:.0f} MB WAV): peak {peak_gb:.2f} GB, "
                f"{seconds:.1f} s, {heard[0] if heard else '?'} of {played} hits as taps at "
                f"{heard[1] if heard else '?'} qpm (exit {os.waitstatus_to_exitcode(status)})"
            )
            path.unlink()


if __name__ == "__main__":
    run_watched(main)
