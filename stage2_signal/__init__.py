"""Stage 2: TraceMaps (per-row trace probability maps on the canonical sheet) -> Signals in mV.

``extract`` reads each row's map column by column (sub-pixel y, stroke extent, confidence) into a fine
polyline; ``calibrate`` finds each row's time origin and baseline and samples every panel at its lead's
sample times through the measured px/mm; ``postprocess`` fuses copies of a lead and enforces Einthoven;
``refine`` applies the 1-D refiner network (``model``), trained by ``train`` on the readings ``data`` collects
from the real pipeline; ``infer`` holds the entry points (:class:`~stage2_signal.infer.SignalExtractor`,
:func:`~stage2_signal.infer.extract_signals`); ``oracle`` builds ideal maps from synth labels.
"""
