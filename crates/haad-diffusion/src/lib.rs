//! HumanMAC-style masked DCT completion (to be built).
