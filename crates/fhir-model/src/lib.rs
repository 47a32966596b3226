//! Thin wrapper around fhirbolt (R4). Work in progress.
