"""The render loop's stages, composed by ``instrument.render.Renderer`` (see DESIGN.md's diagram):

controls (``controls.Controls``: events through the mapping into control values) -> performance
(``lab.live.LiveLab`` over ``performance.Performance``: control values and time -> the frame's coordinates)
-> decode (``decoding.Decoding``: coordinates -> picture, with the frame cache) -> publish (the mailbox, and
``takes.Takes`` for the recorder). ``idle.IdleWork`` uses the time left between frames (the full decoder's
refinement, prefetch); ``status.StatusBoard`` keeps what the HUD shows; ``clock`` gives the loop its time.
Each stage is built once per session and can be driven without a thread (tests, bench, offline render).
"""
