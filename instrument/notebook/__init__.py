"""Widgets for Jupyter and VS Code notebooks (the ``notebook`` extra:
``pip install 'latent-instrument[notebook]'``).

- ``Scrubber(model, anchors)``: a picture with sliders (position, path kind, noise, locks) that updates live
  as you drag, on ``play``'s fast path (``scrubber``);
- ``MidiLink``: a controller moves the sliders through a mapping file (``Scrubber.listen``; ``midi``).
"""

from instrument.notebook.midi import MidiLink
from instrument.notebook.scrubber import Scrubber

__all__ = ["MidiLink", "Scrubber"]
