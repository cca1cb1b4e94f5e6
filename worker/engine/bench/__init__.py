"""Benchmarks (``avlora bench``): training steps (``train``), preprocessing (``preprocess``),
memory and profile breakdowns (``profile``) and the device sessions' plans (``suite``).
May import every other engine room; nothing imports ``bench`` but the commands."""
