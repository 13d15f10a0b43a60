# auxformer tasks: `just --list`
set shell := ["bash", "-euo", "pipefail", "-c"]

# generate the demo corpus, train, evaluate
demo:
    auxformer-train --demo --out runs/demo

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
