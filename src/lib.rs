//! sp-gateway library.
