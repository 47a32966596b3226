//! Commissioners' reports: aggregate figures about referrals and wellbeing, never a record.
//! `disclosure` decides which counts a table may show.

pub mod disclosure;
