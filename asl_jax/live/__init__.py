"""Live and continuous recognition (`asl-live`): sources of landmark frames (sources.py, with the
extraction child extract_child.py), the online segmenter (segmenter.py), the recogniser with its ring
buffer and one compiled forward pass (recognizer.py), the outputs (writers.py), the driver (stream.py)
and the scores of continuous recognition (scoring.py)."""
