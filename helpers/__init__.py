"""GrooVAE drum lab: Magenta's GrooVAE family rebuilt in Keras 3, with the data and tools around it."""

import importlib.util
import os
import warnings

# The one place the Keras backend is chosen, before anything imports Keras: the user's
# KERAS_BACKEND wins; otherwise TensorFlow where it is installed, else JAX (Colab's TPU image).
if "KERAS_BACKEND" not in os.environ:
    os.environ["KERAS_BACKEND"] = "tensorflow" if importlib.util.find_spec("tensorflow") else "jax"

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) buries notebook output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# note-seq imports pydub, which warns about ffmpeg at import time; no code path here uses ffmpeg.
warnings.filterwarnings("ignore", message="Couldn't find ffmpeg or avconv")
