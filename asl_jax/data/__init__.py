"""Data layer: WLASL splits, feature files, landmark layouts, packed datasets and synthetic data."""
