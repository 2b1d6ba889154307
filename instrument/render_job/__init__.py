"""The offline render of a take (``latent-instrument render``), in one process or many.

- ``plan``: the take's control replay, computed once into the frames to draw (their coordinates).
- ``draw``: a run of those frames decoded and written as PNG files, the same bits in every process.
- ``output``: the render folder: frames, ``frames.jsonl``, ``render.json``, progress, the video.
- ``team``: the processes, as accelerate sees them: each one's contiguous share, the few messages.
- ``launch``: ``--processes N``: the same command in N processes, through accelerate's launcher.
- ``job``: one process's whole run, from the take folder to its share of the frames on disk.
"""
