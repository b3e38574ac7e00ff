//! smith-mutate
