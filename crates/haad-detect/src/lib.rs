//! Support sets, anomaly scoring and evaluation (to be built).
