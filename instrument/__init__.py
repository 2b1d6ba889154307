"""Latent Instrument: play the latent space of an image autoencoder with a MIDI controller."""

__version__ = "0.1.0"
