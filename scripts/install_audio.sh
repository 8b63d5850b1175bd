#!/usr/bin/env bash
# FluidSynth and a General MIDI soundfont make the audio sound like a real kit. Without them (no
# root, no apt) the helpers fall back to a built-in synthetic kit, so this never fails.
# Used by `make setup` and by the notebooks' Colab setup cell; skipped when the soundfont is there.
if [ -e /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || ! command -v apt-get >/dev/null; then
  exit 0
fi
SUDO=$( [ "$(id -u)" = 0 ] || echo sudo )
( $SUDO apt-get update -qq && \
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq fluidsynth fluid-soundfont-gm ) \
  >/dev/null 2>&1 || echo "FluidSynth not installed; audio will use the built-in drum kit"
exit 0
