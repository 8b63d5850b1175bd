"""How closely our GrooVAE reproduces Magenta 2.1.4 on each config of the family, at full widths.

    python bench/magenta_family.py --full       # once: Magenta's own numbers, ~16 MB a config
    python bench/bench_family.py [--size full|tiny] [--dir DIR]

For every config, our TrainedModel loads Magenta's TF1 .tar and is run on the fixture's windows
(tests/test_family.py makes the same checks on the tiny fixtures): the encoder's mu and sigma,
the teacher-forced logits given z = mu, r_loss, and a greedy decode (temperature 1e-30, hits =
logit > 0) from z = mu, compared hit by hit, with its logits teacher-forced on Magenta's greedy
outputs. Prints the largest error of each per config.
"""

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from conditions import run_watched  # noqa: E402

from helpers import device  # noqa: E402
from helpers.config import MAGENTA_CONFIGS, get_config, with_overrides  # noqa: E402
from helpers.constants import HITS  # noqa: E402
from helpers.losses import r_loss  # noqa: E402
from helpers.sample import TrainedModel  # noqa: E402

FOLDERS = {
    "full": REPO / "outputs" / "magenta_family",
    "tiny": REPO / "tests" / "fixtures" / "magenta",
}
# The tiny fixtures' widths, as bench/magenta_family.py applies them to Magenta's configs.
TINY_WIDTHS = dict(z_size=8, enc_rnn_size=(16,), dec_rnn_size=(16, 16))


def max_errors(trained: TrainedModel, ref) -> dict[str, float]:
    """Largest absolute error of mu, sigma, logits, greedy values and greedy logits, largest
    relative error of r_loss, and the number of greedy hits that differ."""
    controls = ref["controls"].astype(np.float32) if trained.model.control_depth else None
    model = trained.model
    mu, sigma = model.encode(ref["inputs"].astype(np.float32), controls)
    logits = model.reconstruction_logits(ref["outputs"], ref["mu"], controls)
    losses = np.asarray(r_loss(ref["outputs"], logits))
    greedy = trained.decode_grooves(ref["mu"], float(ref["temperature"]), 0, controls)
    greedy_logits = model.reconstruction_logits(ref["greedy"], ref["mu"], controls)

    def worst(ours, theirs) -> float:
        return float(np.max(np.abs(np.asarray(ours, np.float64) - theirs)))

    return {
        "mu": worst(mu, ref["mu"]),
        "sigma": worst(sigma, ref["sigma"]),
        "logits": worst(logits, ref["logits"]),
        "r_loss_rel": float(np.max(np.abs(losses / ref["r_loss"] - 1))),
        "hits_differ": int(np.sum(greedy[..., HITS] != ref["greedy"][..., HITS])),
        "greedy": worst(greedy, ref["greedy"]),
        "greedy_logits": worst(greedy_logits, ref["greedy_logits"]),
        "nan": int(np.isnan(greedy).sum()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(FOLDERS), default="full")
    parser.add_argument("--dir", type=Path, help="the fixtures' folder (default by --size)")
    args = parser.parse_args(argv)
    folder = args.dir or FOLDERS[args.size]
    missing = [c for c in MAGENTA_CONFIGS if not (folder / f"{c}_{args.size}.tar").exists()]
    if missing:
        sys.exit(
            f"no {args.size} fixtures for {missing} in {folder}: run "
            f"`python bench/magenta_family.py{' --full' if args.size == 'full' else ''}`"
        )
    print(f"CPU: {device.cpu_info().describe()}")
    print(f"{args.size} widths, Magenta's numbers from {folder}")
    header = None
    for name in MAGENTA_CONFIGS:
        config = get_config(name)
        if args.size == "tiny":
            config = with_overrides(config, **TINY_WIDTHS)
        start = time.perf_counter()
        trained = TrainedModel.magenta(
            folder / f"{name}_{args.size}.tar", config=config, decoding="magenta"
        )
        with np.load(folder / f"{name}_{args.size}.npz") as ref:
            errors = max_errors(trained, ref)
        seconds = time.perf_counter() - start
        if header is None:
            header = f"{'config':46} " + " ".join(f"{k:>13}" for k in errors) + "      s"
            print(header)
        cells = " ".join(
            f"{v:>13d}" if isinstance(v, int) else f"{v:>13.2e}" for v in errors.values()
        )
        print(f"{name:46} {cells} {seconds:6.1f}")


if __name__ == "__main__":
    run_watched(main)
