"""Scoring a model: the one inference function, the jitted evaluator, metrics, calibration and the unknown
decision, class vectors for enrolment, and the report plots."""
