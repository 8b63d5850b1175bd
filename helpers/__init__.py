"""GrooVAE drum lab: Magenta's groovae_4bar rebuilt in Keras 3, with the data and tools around it."""

import os
import warnings

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) buries notebook output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# note-seq imports pydub, which warns about ffmpeg at import time; no code path here uses ffmpeg.
warnings.filterwarnings("ignore", message="Couldn't find ffmpeg or avconv")
