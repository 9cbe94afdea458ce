"""The confidence model (runbook 8): features of each entry decision, a small model trained
in numpy and written as a real `.tflite` flatbuffer, a LiteRT predictor that adjusts entry
confidence (or only watches, in shadow mode), an online learner, retraining and the
walk-forward evaluation that decides whether the model may act. See docs/ml.md.

Nothing here may stop trading: every failure is logged with runbook 8's message and shown in
status, and the engine goes on with the ensemble's own confidence."""

PREDICTOR_FAILED = "TFLite predictor failed"
LEARNER_FAILED = "Continuous learner update failed"
