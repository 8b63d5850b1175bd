"""Times the web page in headless chromium on this CPU: a model's first load (float16 export),
one 2-bar decode, and drumify from the end of the taps to the loop starting. The page's encoder
and decoder run their matrix products in a WebAssembly SIMD kernel (wasm) or in plain
JavaScript (js, where a browser lacks SIMD); TF.js reads the weights, on the backend the page
asked for (cpu by default; webgl runs in software where there is no GPU, and must hand the
weights back).

    python bench/bench_web_page.py [--repeats 20] [--kernels wasm js] [--backends cpu webgl]

Needs what tests/test_web_page.py needs: /usr/bin/chromium, playwright, js/dist (make setup).
"""

import argparse
import itertools
import os
import statistics
import tempfile
from pathlib import Path

from conditions import run_watched

from helpers.device import cpu_info
from helpers.sample import TrainedModel
from helpers.web_page import CHROMIUM_ARGS, build_page, serve

TAP_MODEL = "groovae_2bar_tap_fixed_velocity"  # a 2-bar model: decode and drumify both
DECODE_TARGET_MS = 50.0
LOAD_TARGET_MS = 3000.0
# Two bars of quarter-note taps at 120 qpm, handed to the page as its tap recorder keeps them.
TAPS_THEN_LOOP = """async () => {
  const taps = groovaePage.taps;
  taps.times = [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5];
  taps.velocities = taps.times.map(() => 100);
  taps.start = performance.now();
  groovaePage.api.finishTaps();
  return groovaePage.tapsToLoopMs;
}"""


def measure(browser, address: str, backend: str, kernel: str, repeats: int) -> dict:
    """First load, decode and taps-to-loop times (ms) in a fresh tab on `backend`, the network's
    products by `kernel`."""
    page = browser.new_page()
    page.goto(f"{address}?backend={backend}&kernel={kernel}")
    page.wait_for_function("window.groovaePage.ready === true", timeout=300_000)
    ran = page.evaluate("groovaePage.backend")
    kernel_ran = page.evaluate("groovaePage.api.kernelName(groovaePage.kernel)")
    decode = page.evaluate(
        """([name, repeats]) => {
          const model = groovaePage.models[name];
          const z = groovaePage.api.priorZ(model, 0);
          const times = [];
          for (let i = 0; i < repeats + 2; i++) {
            const started = performance.now();
            groovaePage.api.decode(model, z, {temperature: 0.5, seed: i});
            times.push(performance.now() - started);
          }
          return times.slice(2);  // the first two build the kernels
        }""",
        [TAP_MODEL, repeats],
    )
    page.click("button[data-panel=drumify]")
    taps_to_loop = [page.evaluate(TAPS_THEN_LOOP) for _ in range(3)]
    load = page.evaluate("groovaePage.loadMs")
    page.close()
    return {
        "backend": ran,
        "kernel": kernel_ran,
        "load": load,
        "decode": decode,
        "taps_to_loop": taps_to_loop,
    }


def main(argv: list[str] | None = None) -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--kernels", nargs="+", default=["wasm", "js"], choices=["wasm", "js"])
    parser.add_argument("--backends", nargs="+", default=["cpu"])
    args = parser.parse_args(argv)

    print(f"CPU: {cpu_info().describe()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_page({TAP_MODEL: TrainedModel.pretrained(TAP_MODEL)}, Path(tmp) / "site")
        size = sum(p.stat().st_size for p in (folder / "models" / TAP_MODEL).iterdir()) / 2**20
        server, address = serve(folder)
        with sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            print(f"chromium {browser.version}, headless; {TAP_MODEL} as float16 ({size:.1f} MiB)")
            for backend, kernel in itertools.product(args.backends, args.kernels):
                run = measure(browser, address, backend, kernel, args.repeats)
                decode = statistics.median(run["decode"])
                taps = statistics.median(run["taps_to_loop"])
                print(
                    f"products in {run['kernel']} (asked {kernel}), weights read by TF.js's "
                    f"{run['backend']} backend (asked {backend}): first load "
                    f"{run['load']:.0f} ms (target under {LOAD_TARGET_MS:.0f}: "
                    f"{'met' if run['load'] < LOAD_TARGET_MS else 'NOT met'}); 2-bar decode "
                    f"median {decode:.1f} ms of {len(run['decode'])}, fastest "
                    f"{min(run['decode']):.1f} (target under {DECODE_TARGET_MS:.0f}: "
                    f"{'met' if decode < DECODE_TARGET_MS else 'NOT met'}); end of taps to loop "
                    f"median {taps:.0f} ms of {len(run['taps_to_loop'])}"
                )
            browser.close()
        server.shutdown()


if __name__ == "__main__":
    run_watched(main)
