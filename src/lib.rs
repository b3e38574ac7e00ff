//! smith
