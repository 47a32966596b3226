//! StructureDefinition-driven FHIR R4 validator. Work in progress.
