//! smith-env
