"""The latent lab: tools that chart the latent space rather than play it.

- ``atlas``: many encoded images on one 2D map the performer can fly across (``Atlas``, ``draw_minimap``).
- ``curvature``: where the decoder stretches latent space (``stretch``, ``stretch_map``, ``path_profile``).
- ``pacing``: re-time paths so the picture changes at a constant rate; bend them around turbulence.

Every function takes the decoder as a plain callable ``decode(latents[B,C,h,w]) -> pixels[B,3,8h,8w] in
[0, 1]`` (``Autoencoder.decode`` or anything like it), so the math does not depend on where weights come from.
"""
