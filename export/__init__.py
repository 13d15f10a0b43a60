"""auxformer.export: ONNX export, TensorRT engine builds, parity verification, `auxformer-export`.

Public API (each module imports torch / onnx / tensorrt itself, so `auxformer-export --help` stays fast):
- onnx_export: export_onnx, read_manifest, ort_session, ExportWrapper, ExportError
- verify: verify, Thresholds, THRESHOLDS, thresholds_for, Report; backends: TorchBackend, OnnxRuntimeBackend
- cases: verification_clips, build_cases; fp16: convert_fp16
- tensorrt_build: build_engine, plan_build, EngineOptions, OnnxModels, EngineUnavailable, EngineBuildError
- triton: write_repository; face_encoder: export_face_encoder; pipeline: run_export, ExitCode; request: ExportRequest
"""
