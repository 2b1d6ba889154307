"""The latent lab: tools that chart the latent space rather than play it.

- ``atlas``: many encoded images on one 2D map the performer can fly across (``Atlas``, ``draw_minimap``).
- ``stretch``: how far the picture moves per latent step (first order) and whether it moves on the same way
  (``bend``, second order); ``curvature``: both over the plane through anchors (the weather map command).
- ``pacing``: re-time paths so the picture changes at a constant rate (``survey``, ``PacingTable``).
- ``geodesic``: the route between two anchors along which the picture changes least.
- ``phases``: where along a path the picture changes kind.
- ``measure``, ``jobs`` and ``live``: the same measurements in live play, a batch of decodes per frame.

Every function takes the decoder as a plain callable ``decode(latents[B,C,h,w]) -> pixels[B,3,8h,8w] in
[0, 1]`` (``Autoencoder.decode`` or anything like it), so the math does not depend on where weights come from.
"""
