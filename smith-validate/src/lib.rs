//! smith-validate
