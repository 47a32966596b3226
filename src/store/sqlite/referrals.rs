//! Referrals in SQLite: intake, changes, and the VCS organisations' listing.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::audit::insert_audit;
use super::outbox::insert_outbox;
use super::resources::{current_resource, insert_first_version, insert_resource};
use super::SqliteStore;
use crate::domain::{ClientId, Identifier, VcsId};
use crate::store::rows::{self, count, limit};
use crate::store::traits::Referrals;
use crate::store::types::*;
use crate::store::{timestamp, StoreError};
use crate::translate::vcs_status::VcsStatus;

fn referral_with_identifier(
    conn: &Connection,
    client: &str,
    identifier: &Identifier,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT referral_id FROM referral_identifiers
             WHERE client_id = ?1 AND system = ?2 AND value = ?3",
        )?
        .query_row(
            params![client, identifier.system, identifier.value],
            |row| row.get(0),
        )
        .optional()?)
}

/// The body as received, in the form `referrals.received_body` keeps it.
struct ReceivedBody {
    encoding: &'static str,
    bytes: Vec<u8>,
}

/// LZ4 frame format: fast enough to cost the request a few microseconds, and what the `lz4`
/// command line tool reads, so an operator can still look at what a vendor sent.
fn compress(body: &[u8]) -> ReceivedBody {
    use std::io::Write;
    let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(body.len() / 2));
    let written = encoder.write_all(body).map_err(|e| e.to_string());
    match written.and_then(|()| encoder.finish().map_err(|e| e.to_string())) {
        Ok(bytes) => ReceivedBody {
            encoding: "lz4",
            bytes,
        },
        // Writing to memory does not fail; should it ever, the body is stored as it came.
        Err(_) => ReceivedBody {
            encoding: "identity",
            bytes: body.to_vec(),
        },
    }
}

fn insert_referral(
    conn: &Connection,
    r: &NewReferral,
    received: &ReceivedBody,
) -> Result<CreateOutcome, StoreError> {
    let client = r.client_id.as_str();
    let processed: Option<String> = match &r.message_id {
        Some(message_id) => conn
            .prepare_cached(
                "SELECT referral_id FROM processed_messages WHERE client_id = ?1 AND message_id = ?2",
            )?
            .query_row(params![client, message_id], |row| row.get(0))
            .optional()?,
        None => None,
    };
    let holders = r
        .identifiers
        .iter()
        .map(|identifier| referral_with_identifier(conn, client, identifier))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(refusal) = rows::earlier_claim(r, processed, holders) {
        return Ok(refusal);
    }
    let created_at = timestamp(r.created_at);
    let id = r.referral_id.as_str();
    conn.prepare_cached(
        "INSERT INTO referrals (id, client_id, vcs_id, patient_id, status, record,
             received_content_type, received_body, received_body_encoding, created_at, updated_at,
             task_id, based_on)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12)",
    )?
    .execute(params![
        id,
        client,
        r.vcs_id.as_str(),
        r.patient_id.as_str(),
        r.status.as_str(),
        r.record,
        r.received_content_type,
        received.bytes,
        received.encoding,
        created_at,
        r.task_id.as_str(),
        r.onward.as_ref().map(|(parent, _)| parent.as_str())
    ])?;
    let mut identifiers = conn.prepare_cached(
        "INSERT INTO referral_identifiers (client_id, system, value, referral_id) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for identifier in &r.identifiers {
        identifiers.execute(params![client, identifier.system, identifier.value, id])?;
    }
    if let Some(message_id) = &r.message_id {
        conn.prepare_cached(
            "INSERT INTO processed_messages (client_id, message_id, referral_id, received_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![client, message_id, id, created_at])?;
    }
    for resource in &r.resources {
        insert_first_version(conn, resource, client, id, &created_at)?;
    }
    for message in &r.outbox {
        insert_outbox(conn, message, id, &created_at)?;
    }
    insert_audit(conn, &r.audit_row(&r.creation_audit()), &created_at)?;
    Ok(CreateOutcome::Created)
}

fn load_referral(
    conn: &Connection,
    referral_id: &str,
) -> Result<Option<ReferralState>, StoreError> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {} FROM referrals WHERE id = ?1",
            rows::REFERRAL_COLUMNS
        ))?
        .query_and_then(params![referral_id], |r| rows::referral(referral_id, r))?
        .next()
        .transpose()?;
    let Some(row) = row else {
        return Ok(None);
    };
    let client = row.client_id.to_string();
    let service_request = current_resource(conn, &client, "ServiceRequest", referral_id)?;
    let task = match &row.task_id {
        Some(task_id) => current_resource(conn, &client, "Task", task_id)?,
        None => None,
    };
    let sequences = conn
        .prepare_cached(
            "SELECT target_kind, vcs_id, MAX(sequence) FROM outbox WHERE referral_id = ?1 GROUP BY target_kind, vcs_id",
        )?
        .query_and_then(params![referral_id], |r| rows::sequence(referral_id, r))?
        .collect::<Result<Vec<_>, _>>()?;
    row.into_state(service_request, task, sequences).map(Some)
}

fn stored_response(
    conn: &Connection,
    owner: &str,
    referral_id: &str,
    key: &str,
) -> Result<Option<StoredResponse>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {} FROM idempotency_keys WHERE owner = ?1 AND referral_id = ?2 AND key = ?3",
        rows::STORED_RESPONSE_COLUMNS
    ))?
    .query_and_then(params![owner, referral_id, key], |row| {
        rows::stored_response(key, row)
    })?
    .next()
    .transpose()
}

fn apply_change(conn: &Connection, change: &ReferralChange) -> Result<ChangeOutcome, StoreError> {
    let at = timestamp(change.at);
    let referral_id = change.referral_id.as_str();
    let (client, patient_id): (String, String) = match conn
        .prepare_cached(
            "SELECT client_id, patient_id FROM referrals WHERE id = ?1 AND revision = ?2",
        )?
        .query_row(params![referral_id, change.expected_revision], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
    {
        Some(found) => found,
        None => return Ok(ChangeOutcome::Conflict),
    };
    if let Some((owner, key, _)) = &change.idempotency {
        if stored_response(conn, owner, referral_id, key)?.is_some() {
            // A request with this key was applied meanwhile: its answer stands.
            return Ok(ChangeOutcome::Conflict);
        }
    }
    conn.prepare_cached(
        "UPDATE referrals SET revision = revision + 1, updated_at = ?2,
                status = COALESCE(?3, status), vcs_status = COALESCE(?4, vcs_status)
         WHERE id = ?1",
    )?
    .execute(params![
        referral_id,
        at,
        change.status.map(ReferralStatus::as_str),
        change.vcs_status.map(VcsStatus::as_str)
    ])?;
    for resource in &change.resources {
        insert_resource(conn, resource, &client, referral_id, &at)?;
    }
    for message in &change.outbox {
        insert_outbox(conn, message, referral_id, &at)?;
    }
    for row in change.audit_rows(&patient_id) {
        insert_audit(conn, &row, &at)?;
    }
    if let Some((owner, key, response)) = &change.idempotency {
        conn.prepare_cached(
            "INSERT INTO idempotency_keys (owner, referral_id, key, request_hash, status, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![owner, referral_id, key, response.request_hash, response.status, response.body, at])?;
    }
    if let Some(child) = &change.onward {
        // The child's body is a small JSON request: compressed here, on the writer, like any.
        let received = compress(&child.received_body);
        if !matches!(
            insert_referral(conn, child, &received)?,
            CreateOutcome::Created
        ) {
            // An onward referral carries no GP identifier or message id to collide on.
            return Err(StoreError::Database("an onward referral collided".into()));
        }
    }
    Ok(ChangeOutcome::Applied)
}

/// Builds the search's WHERE clause from the filters present; values are always bound.
fn search(
    conn: &Connection,
    client: &str,
    query: &ReferralQuery,
) -> Result<SearchPage, StoreError> {
    let mut filters = vec!["f.client_id = ?".to_string()];
    let mut values: Vec<rusqlite::types::Value> = vec![client.to_string().into()];
    if let Some((system, value)) = &query.identifier {
        match system {
            Some(system) => {
                filters.push(
                    "f.id IN (SELECT referral_id FROM referral_identifiers
                              WHERE client_id = f.client_id AND system = ? AND value = ?)"
                        .into(),
                );
                values.push(system.clone().into());
            }
            None => filters.push(
                "f.id IN (SELECT referral_id FROM referral_identifiers
                          WHERE client_id = f.client_id AND value = ?)"
                    .into(),
            ),
        }
        values.push(value.clone().into());
    }
    if let Some(patient) = &query.patient_id {
        filters.push("f.patient_id = ?".into());
        values.push(patient.clone().into());
    }
    if let Some(parent) = &query.based_on {
        filters.push("f.based_on = ?".into());
        values.push(parent.clone().into());
    }
    if !query.statuses.is_empty() {
        let marks = vec!["?"; query.statuses.len()].join(", ");
        filters.push(format!("f.status IN ({marks})"));
        values.extend(query.statuses.iter().map(|s| s.clone().into()));
    }
    let condition = filters.join(" AND ");
    let total: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM referrals f WHERE {condition}"),
        rusqlite::params_from_iter(values.iter()),
        |row| row.get(0),
    )?;
    values.push(limit(query.count).into());
    values.push(limit(query.offset).into());
    let sql = format!(
        "SELECT r.resource_type, r.id, r.version_id, r.last_updated, r.content
         FROM referrals f JOIN resources r
           ON r.resource_type = 'ServiceRequest' AND r.id = f.id
          AND r.version_id = (SELECT MAX(version_id) FROM resources
                              WHERE resource_type = 'ServiceRequest' AND id = f.id)
         WHERE {condition}
         ORDER BY f.created_at, f.id LIMIT ? OFFSET ?"
    );
    let mut statement = conn.prepare(&sql)?;
    let resources = statement
        .query_and_then(rusqlite::params_from_iter(values.iter()), |row| {
            rows::stored_resource(row)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SearchPage {
        total: count(total),
        resources,
    })
}

#[async_trait]
impl Referrals for SqliteStore {
    async fn create_referral(
        &self,
        mut referral: NewReferral,
        condition: Option<Identifier>,
    ) -> Result<CreateOutcome, StoreError> {
        // Compressed here, on the request's thread: the writer's time is the scarce one.
        let received = compress(&std::mem::take(&mut referral.received_body));
        self.write(move |conn| {
            if let Some(condition) = &condition {
                let client = referral.client_id.as_str();
                if let Some(existing) = referral_with_identifier(conn, client, condition)? {
                    if let Some(found) =
                        current_resource(conn, client, "ServiceRequest", &existing)?
                    {
                        return Ok(CreateOutcome::Existing(found));
                    }
                }
            }
            insert_referral(conn, &referral, &received)
        })
        .await
    }

    async fn search_referrals(
        &self,
        client: &ClientId,
        query: &ReferralQuery,
    ) -> Result<SearchPage, StoreError> {
        let (client, query) = (client.to_string(), query.clone());
        self.read(move |conn| search(conn, &client, &query)).await
    }

    async fn load_referral(&self, referral_id: &str) -> Result<Option<ReferralState>, StoreError> {
        let referral_id = referral_id.to_string();
        self.read(move |conn| load_referral(conn, &referral_id))
            .await
    }

    async fn apply_change(&self, change: ReferralChange) -> Result<ChangeOutcome, StoreError> {
        self.write(move |conn| apply_change(conn, &change)).await
    }

    async fn idempotent_response(
        &self,
        owner: &str,
        referral_id: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let (owner, referral_id, key) =
            (owner.to_string(), referral_id.to_string(), key.to_string());
        self.read(move |conn| stored_response(conn, &owner, &referral_id, &key))
            .await
    }

    fn write_refusal(&self) -> Option<String> {
        self.poison.reason()
    }

    async fn used_bytes(&self) -> Result<u64, StoreError> {
        let pages: i64 = self
            .read(|conn| {
                Ok(conn.query_row(
                    "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                    [],
                    |row| row.get(0),
                )?)
            })
            .await?;
        // The WAL keeps its largest size (see `SqliteStore::open`): it is disk the database takes.
        let beside = |suffix: &str| {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            std::fs::metadata(path).map_or(0, |m| m.len())
        };
        Ok(u64::try_from(pages).unwrap_or(0) + beside("-wal") + beside("-shm"))
    }

    async fn free_bytes(&self) -> Result<Option<u64>, StoreError> {
        let path = self.path.clone();
        let free = tokio::task::spawn_blocking(move || fs4::available_space(path))
            .await
            .map_err(|e| StoreError::Unavailable(format!("free space: {e}")))?
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        Ok(Some(free))
    }

    async fn list_vcs_referrals(
        &self,
        vcs: &VcsId,
        query: &VcsReferralQuery,
    ) -> Result<(usize, Vec<VcsReferral>), StoreError> {
        let (status, since) = (query.status, query.since);
        let (count_wanted, offset) = (query.count, query.offset);
        let (vcs, status, since) = (
            vcs.to_string(),
            status.map(VcsStatus::as_str),
            since.map(timestamp),
        );
        self.read(move |conn| {
            let condition = "vcs_id = ?1 AND (?2 IS NULL OR vcs_status = ?2) AND (?3 IS NULL OR updated_at >= ?3)";
            let total: i64 = conn.query_row(
                &format!("SELECT COUNT(*) FROM referrals WHERE {condition}"),
                params![vcs, status, since],
                |row| row.get(0),
            )?;
            let items = conn
                .prepare_cached(&format!(
                    "SELECT {} FROM referrals WHERE {condition}
                     ORDER BY updated_at, id LIMIT ?4 OFFSET ?5",
                    rows::VCS_REFERRAL_COLUMNS
                ))?
                .query_and_then(
                    params![vcs, status, since, limit(count_wanted), limit(offset)],
                    |row| rows::vcs_referral(row),
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((count(total), items))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_kept_in_lz4_frames_that_unpack_to_the_bytes_received() {
        let body = br#"{"resourceType": "Bundle",   "type": "transaction"}"#.repeat(50);
        let kept = compress(&body);
        assert_eq!(kept.encoding, "lz4");
        assert!(
            kept.bytes.len() < body.len() / 4,
            "{} bytes",
            kept.bytes.len()
        );
        let mut unpacked = Vec::new();
        std::io::Read::read_to_end(
            &mut lz4_flex::frame::FrameDecoder::new(kept.bytes.as_slice()),
            &mut unpacked,
        )
        .expect("an LZ4 frame");
        assert_eq!(unpacked, body);
    }
}
