"""GrooVAE drum lab: Magenta's groovae_4bar rebuilt in Keras 3, with the data and tools around it."""
