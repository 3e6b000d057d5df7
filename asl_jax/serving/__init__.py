"""The commands that use a trained run: evaluate, predict, export and enroll."""
