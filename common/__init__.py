"""auxformer.common: small utilities every part uses (atomic writes, optional imports, metrics,
dict-round-tripping configs, the ordered process pool, progress bars).

It sits below every other part and imports none of them; like the runtime, it never imports torch.
"""
