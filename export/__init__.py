"""auxformer.export: ONNX export, TensorRT engine builds, parity verification, `auxformer-export`."""
