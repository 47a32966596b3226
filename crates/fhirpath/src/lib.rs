//! FHIRPath evaluator. Work in progress.
