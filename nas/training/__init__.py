"""The commands that train a final model and record it: `nas train` and `nas bench train`
(`train`), the hand-designed baselines under one budget (`baselines`), and the ImageNet-layout
run on Ray Train (`transfer`). The loop itself lives in `workers.train`.

Docstring only, so that importing one command does not load the others (or torch).
"""
