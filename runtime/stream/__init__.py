"""Timelines over long recordings and live sources: the pipeline behind `Session.stream`.

source.py (demux and decode in a thread) -> audio.py (running openSMILE) + vad.py and video.py
(running faces) -> windows.py (windows as slices of the running rows) -> segments.py (the model, and
the Segments it yields).
"""
