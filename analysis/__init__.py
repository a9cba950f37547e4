"""analysis: models and plots for the study of step-size tuners and sharpness.

It imports `eqtuners` and is never imported by it.
"""
