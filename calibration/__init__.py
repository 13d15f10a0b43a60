"""auxformer.calibration: INT8 calibration data and probability calibration (no torch)."""
