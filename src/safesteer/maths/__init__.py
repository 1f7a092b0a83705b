"""The method's maths, pure torch and model-free.

One module per concept: :mod:`~safesteer.maths.directions` (safe − unsafe difference of means),
:mod:`~safesteer.maths.alignment` (benign-anchor maps source → target),
:mod:`~safesteer.maths.calibration` (vector length in target units),
:mod:`~safesteer.maths.steering` (ĥ = h + α·v), :mod:`~safesteer.maths.gating` (whether and
along which categories to steer, thresholds from benign data only),
:mod:`~safesteer.maths.metrics` and :mod:`~safesteer.maths.pooling`.
"""
