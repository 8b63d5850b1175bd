"""GrooVAE drum lab: Magenta's GrooVAE family rebuilt in Keras 3, with the data and tools around it."""

import os

from helpers import quiet
from helpers.device import pick_backend

# The one place the Keras backend is chosen, before anything imports Keras: the user's
# KERAS_BACKEND wins; otherwise the backend measured fastest on this kind of machine
# (pick_backend reads no framework).
if "KERAS_BACKEND" not in os.environ:
    os.environ["KERAS_BACKEND"] = pick_backend()[0]

quiet.install()
