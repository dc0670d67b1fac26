"""Stage 2, the networks: config, networks and losses, checkpoint, training (DDP), blinks and gaze,
the one-to-many sampler, range calibration and evaluation."""
