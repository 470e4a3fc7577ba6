"""The device, executable: the AIC100 as aic100.rst (seed 003) and the driver describe it."""
