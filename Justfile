# auxformer tasks: `just --list`
set shell := ["bash", "-euo", "pipefail", "-c"]

# generate demo mp4 clips, extract their features, train, evaluate
demo:
    auxformer-train --demo --out runs/demo

# the feature-level demo (no media; fastest)
demo-features:
    auxformer-train --demo-features --out runs/demo-features

# the test suite (GPU tests skip with a reason where there is no GPU)
test:
    python -m pytest -q

# lint
lint:
    ruff check .
    ruff format --check .

# side-by-side benchmarks, printed as ratios
bench:
    python benchmarks/bench_inference.py
    python benchmarks/bench_features.py --pool
