"""Stage 1, real video -> a dataset: tracking (MediaPipe), the canonical face, audio/video sync,
the expression basis, `prepare`, and reading a dataset back as training windows."""
