//! smith-issue
