"""Physical and converter constants shared by every stage (one definition each).

A leaf module: it imports nothing, so every stage (``acquisition`` first) may use it.
"""

from __future__ import annotations

#: Standard gravity [m/s²] (metrics.md § Conventions: g = 9.80665 m/s²).
G_M_S2 = 9.80665

#: Largest count of the rig's 24-bit signed converter (rig.md: 24-bit signed counts per cell).
ADC_MAX_COUNTS = 2**23 - 1
#: Smallest count of the 24-bit signed converter.
ADC_MIN_COUNTS = -(2**23)
#: Full scale of the converter as a magnitude [counts]: a cell at ``±ADC_FULL_SCALE_COUNTS``
#: (or ``ADC_MIN_COUNTS``) is at its limit (saturated or disconnected).
ADC_FULL_SCALE_COUNTS = ADC_MAX_COUNTS
