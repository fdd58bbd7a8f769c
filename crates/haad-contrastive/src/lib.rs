//! The multi-positive contrastive loss and trainer (to be built).
