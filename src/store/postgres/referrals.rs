//! Referrals in PostgreSQL: intake, changes, and the VCS organisations' listing.

use async_trait::async_trait;
use sqlx::{Postgres, QueryBuilder, Row};

use super::audit::insert_audit;
use super::engine::{is_unique_violation, Tx};
use super::outbox::insert_outbox;
use super::resources::{current_resource, insert_resources};
use super::{PostgresStore, CREATE_ATTEMPTS};
use crate::domain::{ClientId, Identifier, VcsId};
use crate::store::rows::{self, count, limit};
use crate::store::traits::Referrals;
use crate::store::types::*;
use crate::store::StoreError;
use crate::translate::vcs_status::VcsStatus;

async fn referral_with_identifier(
    conn: &mut Tx,
    client: &str,
    identifier: &Identifier,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT referral_id FROM referral_identifiers
         WHERE client_id = $1 AND system = $2 AND value = $3",
    )
    .bind(client)
    .bind(&identifier.system)
    .bind(&identifier.value)
    .fetch_optional(conn)
    .await?)
}

/// One attempt at a create, inside `conn`'s transaction. Only `Created` is to be committed.
async fn create_in(
    conn: &mut Tx,
    r: &NewReferral,
    condition: Option<&Identifier>,
) -> Result<CreateOutcome, StoreError> {
    let client = r.client_id.as_str();
    if let Some(found) = matching_condition(conn, client, condition).await? {
        return Ok(CreateOutcome::Existing(found));
    }
    if let Some(refusal) = earlier_claim(conn, r).await? {
        // Each statement sees what was committed when it started: a concurrent create may have
        // committed the condition's identifier after the look above. Then it is the answer.
        if let Some(found) = matching_condition(conn, client, condition).await? {
            return Ok(CreateOutcome::Existing(found));
        }
        return Ok(refusal);
    }
    insert_referral(conn, r).await
}

/// The current ServiceRequest of the referral `condition` (If-None-Exist) names, if any.
async fn matching_condition(
    conn: &mut Tx,
    client: &str,
    condition: Option<&Identifier>,
) -> Result<Option<StoredResource>, StoreError> {
    let Some(condition) = condition else {
        return Ok(None);
    };
    match referral_with_identifier(conn, client, condition).await? {
        Some(existing) => current_resource(conn, client, "ServiceRequest", &existing).await,
        None => Ok(None),
    }
}

/// Why the referral must not be created: its BaRS message id or one of its identifiers is
/// already another referral's.
async fn earlier_claim(
    conn: &mut Tx,
    r: &NewReferral,
) -> Result<Option<CreateOutcome>, StoreError> {
    let client = r.client_id.as_str();
    let processed: Option<String> = match &r.message_id {
        Some(message_id) => sqlx::query_scalar(
            "SELECT referral_id FROM processed_messages WHERE client_id = $1 AND message_id = $2",
        )
        .bind(client)
        .bind(message_id)
        .fetch_optional(&mut *conn)
        .await?,
        None => None,
    };
    let mut holders = Vec::with_capacity(r.identifiers.len());
    for identifier in &r.identifiers {
        holders.push(referral_with_identifier(conn, client, identifier).await?);
    }
    Ok(rows::earlier_claim(r, processed, holders))
}

/// Writes an accepted referral and everything that goes with it.
async fn insert_referral(conn: &mut Tx, r: &NewReferral) -> Result<CreateOutcome, StoreError> {
    let client = r.client_id.as_str();
    let id = r.referral_id.as_str();
    sqlx::query(
        "INSERT INTO referrals (id, client_id, vcs_id, patient_id, status, record,
             received_content_type, received_body, created_at, updated_at, task_id, based_on)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11)",
    )
    .bind(id)
    .bind(client)
    .bind(r.vcs_id.as_str())
    .bind(r.patient_id.as_str())
    .bind(r.status.as_str())
    .bind(&r.record)
    .bind(&r.received_content_type)
    .bind(&r.received_body)
    .bind(r.created_at)
    .bind(r.task_id.as_str())
    .bind(r.onward.as_ref().map(|(parent, _)| parent.as_str()))
    .execute(&mut *conn)
    .await?;
    for identifier in &r.identifiers {
        sqlx::query(
            "INSERT INTO referral_identifiers (client_id, system, value, referral_id)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(client)
        .bind(&identifier.system)
        .bind(&identifier.value)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    if let Some(message_id) = &r.message_id {
        sqlx::query(
            "INSERT INTO processed_messages (client_id, message_id, referral_id, received_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(client)
        .bind(message_id)
        .bind(id)
        .bind(r.created_at)
        .execute(&mut *conn)
        .await?;
    }
    // The ids are ours and new: no older versions to retire.
    insert_resources(conn, &r.resources, client, id, r.created_at, false).await?;
    for message in &r.outbox {
        insert_outbox(conn, message, id, r.created_at).await?;
    }
    let audit = r.creation_audit();
    insert_audit(conn, &r.audit_row(&audit), r.created_at).await?;
    Ok(CreateOutcome::Created)
}

async fn stored_response(
    conn: &mut Tx,
    owner: &str,
    referral_id: &str,
    key: &str,
) -> Result<Option<StoredResponse>, StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM idempotency_keys WHERE owner = $1 AND referral_id = $2 AND key = $3",
        rows::STORED_RESPONSE_COLUMNS
    )))
    .bind(owner)
    .bind(referral_id)
    .bind(key)
    .fetch_optional(conn)
    .await?
    .map(|row| rows::stored_response(key, &row))
    .transpose()
}

/// A change inside `conn`'s transaction; `Conflict` means nothing may be committed.
async fn apply_change_in(
    conn: &mut Tx,
    change: &ReferralChange,
) -> Result<ChangeOutcome, StoreError> {
    // One statement checks the revision and takes it: a concurrent change (on any replica) waits
    // for this row and then finds the revision moved on.
    let claimed = sqlx::query(
        "UPDATE referrals SET revision = revision + 1, updated_at = $3,
                status = COALESCE($4, status), vcs_status = COALESCE($5, vcs_status)
         WHERE id = $1 AND revision = $2
         RETURNING client_id, patient_id",
    )
    .bind(change.referral_id.as_str())
    .bind(change.expected_revision)
    .bind(change.at)
    .bind(change.status.map(ReferralStatus::as_str))
    .bind(change.vcs_status.map(VcsStatus::as_str))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = claimed else {
        return Ok(ChangeOutcome::Conflict);
    };
    let (client, patient_id): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    let referral_id = change.referral_id.as_str();
    if let Some((owner, key, _)) = &change.idempotency {
        // Checked while this transaction holds the referral's row: a request with this key
        // applied meanwhile has committed, and its answer stands.
        if stored_response(&mut *conn, owner, referral_id, key)
            .await?
            .is_some()
        {
            return Ok(ChangeOutcome::Conflict);
        }
    }
    insert_resources(
        conn,
        &change.resources,
        &client,
        referral_id,
        change.at,
        true,
    )
    .await?;
    for message in &change.outbox {
        insert_outbox(conn, message, referral_id, change.at).await?;
    }
    for row in change.audit_rows(&patient_id) {
        insert_audit(conn, &row, change.at).await?;
    }
    if let Some((owner, key, response)) = &change.idempotency {
        sqlx::query(
            "INSERT INTO idempotency_keys (owner, referral_id, key, request_hash, status, body, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(owner)
        .bind(referral_id)
        .bind(key)
        .bind(&response.request_hash)
        .bind(i32::from(response.status))
        .bind(&response.body)
        .bind(change.at)
        .execute(&mut *conn)
        .await?;
    }
    if let Some(child) = &change.onward {
        if !matches!(insert_referral(conn, child).await?, CreateOutcome::Created) {
            // An onward referral carries no GP identifier or message id to collide on.
            return Err(StoreError::Database("an onward referral collided".into()));
        }
    }
    Ok(ChangeOutcome::Applied)
}

async fn load_referral_in(
    conn: &mut Tx,
    referral_id: &str,
) -> Result<Option<ReferralState>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM referrals WHERE id = $1",
        rows::REFERRAL_COLUMNS
    )))
    .bind(referral_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let row = rows::referral(referral_id, &row)?;
    let client = row.client_id.to_string();
    let service_request = current_resource(conn, &client, "ServiceRequest", referral_id).await?;
    let task = match &row.task_id {
        Some(task_id) => current_resource(conn, &client, "Task", task_id).await?,
        None => None,
    };
    let sequences = sqlx::query(
        "SELECT target_kind, vcs_id, MAX(sequence) FROM outbox WHERE referral_id = $1
         GROUP BY target_kind, vcs_id",
    )
    .bind(referral_id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| rows::sequence(referral_id, r))
    .collect::<Result<Vec<_>, _>>()?;
    row.into_state(service_request, task, sequences).map(Some)
}

/// `SELECT … FROM referrals f WHERE <filters of query>`, values bound.
fn referral_search<'a>(
    select: &str,
    client: &'a str,
    query: &'a ReferralQuery,
) -> QueryBuilder<Postgres> {
    let mut sql = QueryBuilder::new(select);
    sql.push(" WHERE f.client_id = ")
        .push_bind(client.to_string());
    if let Some((system, value)) = &query.identifier {
        sql.push(
            " AND f.id IN (SELECT referral_id FROM referral_identifiers
                           WHERE client_id = f.client_id AND value = ",
        )
        .push_bind(value.clone());
        if let Some(system) = system {
            sql.push(" AND system = ").push_bind(system.clone());
        }
        sql.push(")");
    }
    if let Some(patient) = &query.patient_id {
        sql.push(" AND f.patient_id = ").push_bind(patient.clone());
    }
    if let Some(parent) = &query.based_on {
        sql.push(" AND f.based_on = ").push_bind(parent.clone());
    }
    if !query.statuses.is_empty() {
        sql.push(" AND f.status = ANY(")
            .push_bind(query.statuses.clone())
            .push(")");
    }
    sql
}

#[async_trait]
impl Referrals for PostgresStore {
    async fn create_referral(
        &self,
        referral: NewReferral,
        condition: Option<Identifier>,
    ) -> Result<CreateOutcome, StoreError> {
        for _ in 0..CREATE_ATTEMPTS {
            let mut tx = self.pool.begin().await?;
            match create_in(&mut tx, &referral, condition.as_ref()).await {
                Ok(CreateOutcome::Created) => {
                    tx.commit().await?;
                    if !referral.outbox.is_empty() {
                        self.work.announce();
                    }
                    return Ok(CreateOutcome::Created);
                }
                // Nothing was written; dropping the transaction rolls it back.
                Ok(other) => return Ok(other),
                // Another replica committed this identifier or message id between our look
                // and our insert: look again, and the answer is what it committed.
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(
            "concurrent creates kept colliding; try again".into(),
        ))
    }

    async fn search_referrals(
        &self,
        client: &ClientId,
        query: &ReferralQuery,
    ) -> Result<SearchPage, StoreError> {
        let client = client.as_str();
        let total: i64 = referral_search("SELECT COUNT(*) FROM referrals f", client, query)
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await?;
        let mut page = referral_search(
            "SELECT r.resource_type, r.id, r.version_id, r.last_updated, r.content
             FROM referrals f JOIN resources r
               ON r.resource_type = 'ServiceRequest' AND r.id = f.id AND r.is_current",
            client,
            query,
        );
        page.push(" ORDER BY f.created_at, f.id LIMIT ")
            .push_bind(limit(query.count))
            .push(" OFFSET ")
            .push_bind(limit(query.offset));
        let rows = page.build().fetch_all(&self.pool).await?;
        Ok(SearchPage {
            total: count(total),
            resources: rows
                .iter()
                .map(rows::stored_resource)
                .collect::<Result<_, _>>()?,
        })
    }

    async fn load_referral(&self, referral_id: &str) -> Result<Option<ReferralState>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load_referral_in(&mut conn, referral_id).await
    }

    async fn apply_change(&self, change: ReferralChange) -> Result<ChangeOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        match apply_change_in(&mut tx, &change).await {
            Ok(ChangeOutcome::Applied) => {
                tx.commit().await?;
                let onward = change.onward.as_ref().map_or(0, |child| child.outbox.len());
                if !change.outbox.is_empty() || onward > 0 {
                    self.work.announce();
                }
                Ok(ChangeOutcome::Applied)
            }
            Ok(ChangeOutcome::Conflict) => Ok(ChangeOutcome::Conflict),
            // The same Idempotency-Key committed by a concurrent request: reload and recompute.
            Err(e) if is_unique_violation(&e) => Ok(ChangeOutcome::Conflict),
            Err(e) => Err(e),
        }
    }

    async fn idempotent_response(
        &self,
        owner: &str,
        referral_id: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        stored_response(&mut conn, owner, referral_id, key).await
    }

    async fn used_bytes(&self) -> Result<u64, StoreError> {
        let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }

    async fn free_bytes(&self) -> Result<Option<u64>, StoreError> {
        // The server's data directory may be on another machine; SQL has no portable way to
        // ask for its free space.
        Ok(None)
    }

    async fn list_vcs_referrals(
        &self,
        vcs: &VcsId,
        query: &VcsReferralQuery,
    ) -> Result<(usize, Vec<VcsReferral>), StoreError> {
        const CONDITION: &str = "vcs_id = $1 AND ($2::text IS NULL OR vcs_status = $2)
             AND ($3::timestamptz IS NULL OR updated_at >= $3)";
        let (status, since) = (query.status.map(VcsStatus::as_str), query.since);
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM referrals WHERE {CONDITION}"
        )))
        .bind(vcs.as_str())
        .bind(status)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM referrals WHERE {CONDITION}
             ORDER BY updated_at, id LIMIT $4 OFFSET $5",
            rows::VCS_REFERRAL_COLUMNS
        )))
        .bind(vcs.as_str())
        .bind(status)
        .bind(since)
        .bind(limit(query.count))
        .bind(limit(query.offset))
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .iter()
            .map(rows::vcs_referral)
            .collect::<Result<_, _>>()?;
        Ok((count(total), items))
    }
}
