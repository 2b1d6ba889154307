"""The latent space side: anchors (images, seeds, saved latents) and the geometry that moves between them."""
