"""auxformer.export: ONNX export, TensorRT engine builds, parity verification, `auxformer-export`.

Public API (each module imports torch / onnx / tensorrt itself, so `auxformer-export --help` stays fast):
- onnx_export: export_onnx, read_manifest, ExportWrapper, ExportError
- verify: verify, Memo, Thresholds, THRESHOLDS, thresholds_for, Report; torch_runner: TorchRunner (the
  reference; the exported models run in the runtime's runners, auxformer.runtime.loader)
- cases: verification_clips, build_cases; fp16: convert_fp16
- tensorrt_build: build_engine, plan_build, EngineOptions, OnnxModels, EngineUnavailable, EngineBuildError
- triton: write_repository; pipeline: run_export, ExitCode, export_face_encoder; request: ExportRequest
"""
