//! The Res-GCN action encoder (to be built).
