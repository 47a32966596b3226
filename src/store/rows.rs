//! Rows as both backends read them: the column lists, and each row's one conversion into a
//! domain value. A backend supplies the cells ([`Cells`]); a stored value that is not what its
//! column promises is [`StoreError::Unreadable`], naming the row, never a default.

use chrono::{DateTime, Utc};

use super::types::*;
use super::{timestamp, StoreError};
use crate::domain::{Actor, ClientId, FhirId, Identifier, ReferralId, VcsId};
use crate::translate::vcs_status::VcsStatus;

/// One row's cells by position, whatever the backend's types (SQLite keeps timestamps as text,
/// PostgreSQL as `timestamptz`).
pub trait Cells {
    fn text(&self, i: usize) -> Result<String, StoreError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn time(&self, i: usize) -> Result<DateTime<Utc>, StoreError>;
    fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>, StoreError>;
}

/// A count as the database gives it.
pub fn count(total: i64) -> usize {
    usize::try_from(total).unwrap_or(0)
}

/// A page size or offset as bound.
pub fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn parsed<T: std::str::FromStr>(what: &'static str, id: &str, raw: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    raw.parse()
        .map_err(|e: T::Err| StoreError::unreadable(what, id, e))
}

fn vcs_status(id: &str, raw: &str) -> Result<VcsStatus, StoreError> {
    VcsStatus::parse(raw)
        .ok_or_else(|| StoreError::unreadable("referral", id, format!("unknown status {raw:?}")))
}

pub const RESOURCE_COLUMNS: &str = "resource_type, id, version_id, last_updated, content";

pub fn stored_resource<R: Cells + ?Sized>(row: &R) -> Result<StoredResource, StoreError> {
    Ok(StoredResource {
        resource_type: row.text(0)?,
        id: row.text(1)?,
        version_id: row.int(2)?,
        last_updated: row.time(3)?,
        content: row.text(4)?,
    })
}

pub const SUBSCRIPTION_COLUMNS: &str =
    "id, client_id, resource_type, criteria, endpoint, status, content";

pub fn subscription<R: Cells + ?Sized>(row: &R) -> Result<SubscriptionRow, StoreError> {
    let id = row.text(0)?;
    Ok(SubscriptionRow {
        client_id: parsed("subscription", &id, &row.text(1)?)?,
        resource_type: row.text(2)?,
        criteria: row.text(3)?,
        endpoint: row.text(4)?,
        status: parsed("subscription", &id, &row.text(5)?)?,
        content: row.text(6)?,
        id,
    })
}

pub const DELIVERY_COLUMNS: &str = "id, referral_id, vcs_id, event_type, sequence, state, attempts,
     CASE WHEN state = 'pending' THEN next_attempt_at END, created_at, delivered_at, last_error";

pub fn delivery<R: Cells + ?Sized>(row: &R) -> Result<Delivery, StoreError> {
    let id = row.text(0)?;
    Ok(Delivery {
        referral_id: row.text(1)?,
        vcs_id: row.text(2)?,
        event_type: row.text(3)?,
        sequence: row.int(4)?,
        state: parsed("outbox message", &id, &row.text(5)?)?,
        attempts: row.int(6)?,
        next_attempt_at: row.opt_time(7)?.map(timestamp),
        created_at: timestamp(row.time(8)?),
        delivered_at: row.opt_time(9)?.map(timestamp),
        last_error: row.opt_text(10)?,
        id,
    })
}

pub const ATTEMPT_COLUMNS: &str = "attempted_at, status_code, latency_ms, error, response_prefix";

pub fn attempt<R: Cells + ?Sized>(message_id: &str, row: &R) -> Result<AttemptRow, StoreError> {
    let status_code = row
        .opt_int(1)?
        .map(u16::try_from)
        .transpose()
        .map_err(|e| StoreError::unreadable("delivery attempt", message_id, e))?;
    Ok(AttemptRow {
        attempted_at: timestamp(row.time(0)?),
        status_code,
        latency_ms: u64::try_from(row.int(2)?)
            .map_err(|e| StoreError::unreadable("delivery attempt", message_id, e))?,
        error: row.opt_text(3)?,
        response_prefix: row.opt_text(4)?,
    })
}

/// What a claim returns of each message (from `UPDATE outbox … RETURNING`). A payload naming a
/// stored resource version is that version's content; one whose version is missing reads as
/// NULL and the row as unreadable, never as an empty notification.
pub const OUTBOX_COLUMNS: &str = "id, referral_id, vcs_id, event_type, sequence,
     CASE WHEN payload_type IS NULL THEN payload ELSE
         (SELECT r.content FROM resources r WHERE r.resource_type = outbox.payload_type
             AND r.id = outbox.payload_id AND r.version_id = outbox.payload_version) END,
     attempts, target_kind";

pub fn outbox_message<R: Cells + ?Sized>(row: &R) -> Result<OutboxMessage, StoreError> {
    let id = row.text(0)?;
    let target = row.text(2)?;
    let target_kind: TargetKind = parsed("outbox message", &id, &row.text(7)?)?;
    // An email notice goes to the organisation's people: the organisation is its recipient.
    let recipient_kind = match target_kind {
        TargetKind::Email => TargetKind::Vcs,
        other => other,
    };
    let recipient: Actor = parsed(
        "outbox message",
        &id,
        &format!("{}:{target}", recipient_kind.as_str()),
    )?;
    Ok(OutboxMessage {
        referral_id: parsed("outbox message", &id, &row.text(1)?)?,
        target_kind,
        vcs_id: target,
        event_type: row.text(3)?,
        sequence: row.int(4)?,
        payload: row.text(5)?,
        attempts: row.int(6)?,
        recipient,
        id,
    })
}

pub const AUDIT_COLUMNS: &str = "id, recorded_at, actor, action, resource_type, resource_id,
     patient_id, outcome, correlation_id";

pub fn audit_record<R: Cells + ?Sized>(row: &R) -> Result<AuditRecord, StoreError> {
    let id = row.int(0)?;
    Ok(AuditRecord {
        recorded_at: timestamp(row.time(1)?),
        actor: parsed("audit record", &id.to_string(), &row.text(2)?)?,
        action: row.text(3)?,
        resource_type: row.opt_text(4)?,
        resource_id: row.opt_text(5)?,
        patient_id: row.opt_text(6)?,
        outcome: row.text(7)?,
        correlation_id: row.opt_text(8)?,
        id,
    })
}

pub const VCS_REFERRAL_COLUMNS: &str = "id, vcs_status, updated_at, record";

pub fn vcs_referral<R: Cells + ?Sized>(row: &R) -> Result<VcsReferral, StoreError> {
    let id = row.text(0)?;
    Ok(VcsReferral {
        referral_id: parsed("referral", &id, &id)?,
        status: vcs_status(&id, &row.text(1)?)?,
        updated_at: row.time(2)?,
        record: row.text(3)?,
    })
}

pub const STORED_RESPONSE_COLUMNS: &str = "request_hash, status, body";

pub fn stored_response<R: Cells + ?Sized>(
    key: &str,
    row: &R,
) -> Result<StoredResponse, StoreError> {
    Ok(StoredResponse {
        request_hash: row.text(0)?,
        status: u16::try_from(row.int(1)?)
            .map_err(|e| StoreError::unreadable("idempotent response", key, e))?,
        body: row.text(2)?,
    })
}

pub const TOKEN_COLUMNS: &str = "client_id, scopes, expires_at";

pub fn issued_token<R: Cells + ?Sized>(digest: &str, row: &R) -> Result<IssuedToken, StoreError> {
    Ok(IssuedToken {
        digest: digest.to_string(),
        client_id: parsed("access token", digest, &row.text(0)?)?,
        scopes: row
            .text(1)?
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        expires_at: row.time(2)?,
    })
}

/// `(target kind, target, last sequence)` of a referral's messages.
pub fn sequence<R: Cells + ?Sized>(
    referral_id: &str,
    row: &R,
) -> Result<(TargetKind, String, i64), StoreError> {
    Ok((
        parsed("referral's outbox", referral_id, &row.text(0)?)?,
        row.text(1)?,
        row.int(2)?,
    ))
}

/// `(state, count)` of a recovery job's messages.
pub fn state_count<R: Cells + ?Sized>(
    job_id: &str,
    row: &R,
) -> Result<(DeliveryState, usize), StoreError> {
    Ok((
        parsed("recovery job", job_id, &row.text(0)?)?,
        count(row.int(1)?),
    ))
}

pub const REFERRAL_COLUMNS: &str = "client_id, vcs_id, patient_id, status, vcs_status, task_id,
     revision, record, created_at, updated_at";

/// A referral's own row, before its resources and sequences are read.
#[derive(Debug)]
pub struct ReferralRow {
    pub referral_id: ReferralId,
    pub client_id: ClientId,
    pub task_id: Option<String>,
    vcs_id: VcsId,
    patient_id: FhirId,
    status: ReferralStatus,
    vcs_status: VcsStatus,
    revision: i64,
    record: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub fn referral<R: Cells + ?Sized>(referral_id: &str, row: &R) -> Result<ReferralRow, StoreError> {
    let column = |i: usize| -> Result<String, StoreError> { row.text(i) };
    Ok(ReferralRow {
        referral_id: parsed("referral", referral_id, referral_id)?,
        client_id: parsed("referral", referral_id, &column(0)?)?,
        vcs_id: parsed("referral", referral_id, &column(1)?)?,
        patient_id: parsed("referral", referral_id, &column(2)?)?,
        status: parsed("referral", referral_id, &column(3)?)?,
        vcs_status: vcs_status(referral_id, &column(4)?)?,
        task_id: row.opt_text(5)?,
        revision: row.int(6)?,
        record: column(7)?,
        created_at: row.time(8)?,
        updated_at: row.time(9)?,
    })
}

impl ReferralRow {
    /// The referral's state, with its current ServiceRequest (which must be there), its Task and
    /// the last sequence number per target.
    pub fn into_state(
        self,
        service_request: Option<StoredResource>,
        task: Option<StoredResource>,
        sequences: Vec<(TargetKind, String, i64)>,
    ) -> Result<ReferralState, StoreError> {
        let service_request = service_request.ok_or_else(|| {
            StoreError::unreadable(
                "referral",
                self.referral_id.as_str(),
                "it has no ServiceRequest",
            )
        })?;
        Ok(ReferralState {
            referral_id: self.referral_id,
            client_id: self.client_id,
            vcs_id: self.vcs_id,
            patient_id: self.patient_id,
            status: self.status,
            vcs_status: self.vcs_status,
            revision: self.revision,
            record: self.record,
            created_at: self.created_at,
            updated_at: self.updated_at,
            service_request,
            task,
            sequences,
        })
    }
}

/// Why a new referral must not be created: its BaRS message id was `processed` before, or one
/// of its identifiers already names another referral (`holders`: who holds each identifier).
pub fn earlier_claim(
    referral: &NewReferral,
    processed: Option<String>,
    holders: Vec<Option<String>>,
) -> Option<CreateOutcome> {
    if let Some(existing) = processed {
        return Some(CreateOutcome::DuplicateMessage { existing });
    }
    referral
        .identifiers
        .iter()
        .zip(holders)
        .find_map(|(identifier, holder)| {
            holder.map(|existing| CreateOutcome::IdentifierTaken {
                identifier: identifier.clone(),
                existing,
            })
        })
}

/// A recovery job's row (`vcs_id, since`), before its messages are counted.
pub fn recovery_job<R: Cells + ?Sized>(
    job_id: &str,
    row: &R,
) -> Result<RecoveryProgress, StoreError> {
    Ok(RecoveryProgress::new(
        job_id,
        row.text(0)?,
        timestamp(row.time(1)?),
    ))
}

pub const DIRECTORY_SERVICE_COLUMNS: &str =
    "id, feed, name, state, organization_id, source, content, updated_at";

/// A directory service without its organisation's identifiers (read beside it).
pub fn directory_service<R: Cells + ?Sized>(row: &R) -> Result<DirectoryService, StoreError> {
    let id = row.text(0)?;
    Ok(DirectoryService {
        feed: row.text(1)?,
        name: row.text(2)?,
        state: parsed("directory service", &id, &row.text(3)?)?,
        organization_id: row.opt_text(4)?,
        organization_identifiers: Vec::new(),
        source: row.text(5)?,
        content: row.text(6)?,
        updated_at: row.time(7)?,
        id,
    })
}

/// `(organization_id, system, value)` rows given to the services of those organisations.
pub fn attach_identifiers(
    services: &mut [DirectoryService],
    identifiers: Vec<(String, Identifier)>,
) {
    let mut by_org: std::collections::HashMap<String, Vec<Identifier>> =
        std::collections::HashMap::new();
    for (org, identifier) in identifiers {
        by_org.entry(org).or_default().push(identifier);
    }
    for s in services {
        if let Some(ids) = s.organization_id.as_ref().and_then(|o| by_org.get(o)) {
            s.organization_identifiers = ids.clone();
        }
    }
}
